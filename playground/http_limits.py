"""What one HTTP request or websocket may make the server hold: a body size cap, a time limit
and a cap on frames waiting for a viewer that does not read.

Two layers, because daphne (through twisted) receives a request's whole body before the ASGI
application runs, then copies all of it into the application's queue: an ASGI middleware alone
would see a 512 MB body only once the server holds it. So

- ``LimitedWebRequest`` refuses at the socket: a declared Content-Length over the cap gets 413
  before one body byte is read, a chunked body is counted as it arrives and cut at the cap, and
  a request whose headers are not complete within ``SYSOPS_REQUEST_TIMEOUT_S`` of its request
  line, or whose body stalls that long, gets 408 and is closed (slow headers, a trickled body,
  a declared body never sent).
  ``install()`` makes daphne use it; it is called where the ASGI application is built.
- ``LimitedWebSocketProtocol`` disconnects a websocket client once more than
  ``SYSOPS_WS_BUFFER_MAX_BYTES`` of frames wait in the server for it (a viewer that stopped
  reading); otherwise twisted would buffer them for ever.
- ``BodyLimitMiddleware`` applies the same cap to the ASGI body stream, for any other server.

The cap is ``SYSOPS_REQUEST_BODY_MAX_BYTES``; ``REQUEST_BODY_MAX_BYTES_BY_PATH`` (a setting, by
path prefix) lets an endpoint such as an import accept more.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from django.conf import settings

log = logging.getLogger(__name__)

TOO_LARGE_BODY = b"Request body too large.\n"
TOO_SLOW_BODY = b"Request not received in time.\n"


def body_cap_bytes(path: str) -> int:
    """The largest body a request to ``path`` may send."""
    for prefix, cap in getattr(settings, "REQUEST_BODY_MAX_BYTES_BY_PATH", {}).items():
        if path.startswith(prefix):
            return int(cap)
    return int(settings.SYSOPS_REQUEST_BODY_MAX_BYTES)


def _plain_response(status: int, reason: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _daphne_request_class() -> type:
    from daphne.http_protocol import WebRequest

    class LimitedWebRequest(WebRequest):
        """daphne's request, refusing oversized and slow requests before holding them."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # Here, not at install: importing the reactor installs one, and daphne's server
            # installs its asyncio reactor first.
            from twisted.internet import reactor

            super().__init__(*args, **kwargs)
            self._body_bytes = 0
            self._body_cap_bytes = int(settings.SYSOPS_REQUEST_BODY_MAX_BYTES)
            self._refused = False
            # Created at the request line: the headers and the body must follow in time.
            self._deadline = reactor.callLater(
                settings.SYSOPS_REQUEST_TIMEOUT_S, self._refuse, 408, "Request Timeout"
            )

        def gotLength(self, length: int | None) -> None:  # noqa: N802 - twisted's name
            path = getattr(self.channel, "_path", b"").split(b"?", 1)[0]
            self._body_cap_bytes = body_cap_bytes(path.decode("latin-1"))
            if length is not None and length > self._body_cap_bytes:
                self.content = io.BytesIO()
                # No "100 Continue" after the refusal.
                self.requestHeaders.removeHeader(b"Expect")
                self._refuse(413, "Content Too Large")
                return
            super().gotLength(length)
            self._restart_deadline()  # the headers are in: now the body may not stall

        def handleContentChunk(self, data: bytes) -> None:  # noqa: N802
            if self._refused:
                return
            self._body_bytes += len(data)
            if self._body_bytes > self._body_cap_bytes:
                self._refuse(413, "Content Too Large")
                return
            self._restart_deadline()
            super().handleContentChunk(data)

        def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
            if self._refused:
                return
            self._cancel_deadline()
            super().requestReceived(command, path, version)

        def connectionLost(self, reason: Any) -> None:  # noqa: N802
            self._cancel_deadline()
            super().connectionLost(reason)

        def _restart_deadline(self) -> None:
            if self._deadline.active():
                self._deadline.reset(settings.SYSOPS_REQUEST_TIMEOUT_S)

        def _cancel_deadline(self) -> None:
            if self._deadline.active():
                self._deadline.cancel()

        def _refuse(self, status: int, reason: str) -> None:
            """Answer and close without reading further; the connection's reads stop here."""
            if self._refused:
                return
            self._refused = True
            self._cancel_deadline()
            body = TOO_LARGE_BODY if status == 413 else TOO_SLOW_BODY
            log.info("refused a request from %s: %s %s", self.client_addr, status, reason)
            transport = self.channel.transport
            transport.write(_plain_response(status, reason, body))
            transport.loseConnection()

    return LimitedWebRequest


def buffered_bytes(transport: Any) -> int:
    """Bytes written to a twisted TCP transport and not yet sent to the peer."""
    from twisted.protocols.policies import ProtocolWrapper

    while isinstance(transport, ProtocolWrapper):
        transport = transport.transport
    pending = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
    return pending + getattr(transport, "_tempDataLen", 0)


def _daphne_websocket_class() -> type:
    from daphne.ws_protocol import WebSocketProtocol

    class LimitedWebSocketProtocol(WebSocketProtocol):
        """daphne's websocket, dropping a client that lets frames pile up unread."""

        def serverSend(self, content: str | bytes, binary: bool = False) -> None:  # noqa: N802
            if self.transport is not None and (
                buffered_bytes(self.transport) > settings.SYSOPS_WS_BUFFER_MAX_BYTES
            ):
                log.info(
                    "dropped websocket client %s: over %d bytes unread",
                    self.client_addr,
                    settings.SYSOPS_WS_BUFFER_MAX_BYTES,
                )
                self.dropConnection(abort=True)
                return
            super().serverSend(content, binary)

    return LimitedWebSocketProtocol


def install() -> None:
    """Make daphne build its requests and websockets as the limited classes above (idempotent;
    does nothing when daphne is not installed)."""
    try:
        from daphne import http_protocol, ws_protocol
    except ImportError:
        return
    if getattr(http_protocol.WebRequest, "sysops_limited", False):
        return
    request_class = _daphne_request_class()
    request_class.sysops_limited = True
    # daphne's HTTPFactory.buildProtocol reads this module attribute for each connection, and
    # its WebSocketFactory builds the class in its ``protocol`` attribute.
    http_protocol.WebRequest = request_class
    ws_protocol.WebSocketFactory.protocol = _daphne_websocket_class()


class BodyTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """ASGI: 413 for a declared or streamed body over the cap, before the application reads it
    (Django's handler reads the whole body before the view runs)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = body_cap_bytes(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > cap:
                await _send_413(send)
                return
        received = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except BodyTooLarge:
            await _send_413(send)


async def _send_413(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": TOO_LARGE_BODY})
