"""A 512 MiB POST to /login/ against a real daphne: Django's plain ASGI application (what
daphne does on its own) beside ours (playground/http_limits.py), server VmRSS before, at its
peak and after, and the answer."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from tests.helpers.server import Server, daphne_server  # noqa: E402

BODY_BYTES = 512 << 20
BLOCK_BYTES = 1 << 20
SETTLE_S = 5.0


def plain_application() -> object:
    """Django's ASGI application alone: what daphne imports as request_body:application."""
    from django.core.asgi import get_asgi_application

    return get_asgi_application()


def post_half_gigabyte(server: Server) -> str:
    before = server.rss_bytes()
    peak = before
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=120) as sock:
        sock.sendall(
            (
                f"POST /login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {BODY_BYTES}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        block = b"x" * BLOCK_BYTES
        try:
            while sent < BODY_BYTES:
                sock.sendall(block)
                sent += BLOCK_BYTES
                if sent % (32 << 20) == 0:
                    peak = max(peak, server.rss_bytes())
        except OSError:
            pass
        try:
            answer = sock.recv(64).split(b"\r\n", 1)[0].decode()
        except OSError as exc:
            answer = f"({exc.strerror})"
    elapsed_s = time.monotonic() - started
    settle_until = time.monotonic() + SETTLE_S
    while time.monotonic() < settle_until:
        peak = max(peak, server.rss_bytes())
        time.sleep(0.25)
    mib = 1 << 20
    return (
        f"sent {sent // mib} MiB in {elapsed_s:.1f} s, answer {answer!r}; VmRSS "
        f"{before // mib} MiB before, {peak // mib} MiB peak, {server.rss_bytes() // mib} MiB after"
    )


def main() -> None:
    env = {"SYSOPS_EMBEDDED_AGENT": "0", "PYTHONPATH": str(BENCH_DIR)}
    with daphne_server(env, application="request_body:application") as server:
        print(f"plain Django ASGI: {post_half_gigabyte(server)}")
    with daphne_server(env) as server:
        print(f"ours:              {post_half_gigabyte(server)}")


if __name__ == "__main__":
    main()
else:
    application = plain_application()
