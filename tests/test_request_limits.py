"""Oversized and slow requests against a real daphne: refused before the server holds them."""

from __future__ import annotations

import socket
import time

import pytest

from tests.helpers.server import daphne_server

HALF_GIB = 512 << 20
CHUNK_BYTES = 64 << 10
# The server holds what it needs to serve, not the body: far below 512 MB.
RSS_GROWTH_MAX_BYTES = 64 << 20
TIMEOUT_S = 2


@pytest.fixture(scope="module")
def server():
    with daphne_server({"SYSOPS_REQUEST_TIMEOUT_S": str(TIMEOUT_S)}) as server:
        yield server


def _connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def _head(length: str = "", chunked: bool = False) -> bytes:
    lines = ["POST /login/ HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines.append("Content-Type: application/x-www-form-urlencoded")
    if length:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _stream(sock: socket.socket, total_bytes: int, *, chunked: bool) -> int:
    """Send up to ``total_bytes`` of body; returns how many went before the server closed."""
    block = b"x" * CHUNK_BYTES
    if chunked:
        block = f"{CHUNK_BYTES:x}\r\n".encode() + block + b"\r\n"
    sent = 0
    try:
        while sent < total_bytes:
            sock.sendall(block)
            sent += CHUNK_BYTES
    except OSError:
        pass
    return sent


def test_a_declared_half_gigabyte_body_is_refused_before_it_is_read(server):
    rss_before = server.rss_bytes()
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(_head(str(HALF_GIB)))
        answer = _response(sock)
        elapsed_s = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 413"), answer[:100]
    assert elapsed_s < TIMEOUT_S  # answered at once, not at the timeout
    assert server.rss_bytes() - rss_before < RSS_GROWTH_MAX_BYTES


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_streamed_half_gigabyte_body_is_cut_at_the_cap(server, chunked):
    rss_before = server.rss_bytes()
    with _connect(server) as sock:
        sock.sendall(_head("" if chunked else str(HALF_GIB // 2), chunked=chunked))
        sent = _stream(sock, HALF_GIB, chunked=chunked)
    rss_after = server.rss_bytes()
    print(
        f"sent {sent >> 20} MiB before the close; VmRSS {rss_before >> 20} -> {rss_after >> 20} MiB"
    )
    assert sent < HALF_GIB
    assert rss_after - rss_before < RSS_GROWTH_MAX_BYTES


def test_a_declared_body_never_sent_is_closed_after_the_timeout(server):
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(_head("1000"))
        answer = _response(sock)
        elapsed_s = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert TIMEOUT_S * 0.5 < elapsed_s < TIMEOUT_S + 10


def test_a_body_that_keeps_coming_is_not_cut_by_the_timeout(server):
    """The timeout is on stalls: a slow but steady upload outlasting it still arrives."""
    body = b"username=a&password=b"
    with _connect(server) as sock:
        sock.sendall(_head(str(len(body))))
        for byte in body[:3]:
            time.sleep(TIMEOUT_S * 0.6)
            sock.sendall(bytes([byte]))
        sock.sendall(body[3:])
        answer = _response(sock)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:100]  # Django's answer (no CSRF token)


def test_slow_headers_are_closed_after_the_timeout(server):
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        answer = _response(sock)
        elapsed_s = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert elapsed_s < TIMEOUT_S + 10


def test_a_small_body_still_works(server):
    with _connect(server) as sock:
        body = b"username=a&password=b"
        sock.sendall(_head(str(len(body))) + body)
        answer = _response(sock)
    # Django answers (403: no CSRF token), not the limit.
    assert answer.startswith(b"HTTP/1.1 403"), answer[:100]


@pytest.mark.asyncio
async def test_the_asgi_middleware_refuses_a_declared_or_streamed_body_over_the_cap(settings):
    from channels.testing import HttpCommunicator
    from django.core.asgi import get_asgi_application

    from playground.http_limits import BodyLimitMiddleware

    application = BodyLimitMiddleware(get_asgi_application())
    settings.SYSOPS_REQUEST_BODY_MAX_BYTES = 1000
    declared = HttpCommunicator(
        application, "POST", "/login/", body=b"x", headers=[(b"content-length", b"5000")]
    )
    assert (await declared.get_response())["status"] == 413
    streamed = HttpCommunicator(application, "POST", "/login/", body=b"x" * 5000)
    assert (await streamed.get_response())["status"] == 413


def test_an_endpoint_may_take_larger_bodies(settings):
    from playground.http_limits import body_cap_bytes

    settings.SYSOPS_REQUEST_BODY_MAX_BYTES = 1 << 20
    settings.REQUEST_BODY_MAX_BYTES_BY_PATH = {"/runs/import/": 64 << 20}
    assert body_cap_bytes("/runs/import/") == 64 << 20
    assert body_cap_bytes("/login/") == 1 << 20
