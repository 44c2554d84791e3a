"""A minimal asyncio websocket client (RFC 6455: text frames, ping/pong, close) for tests and
benchmarks against a real server, where no websocket library is installed."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from dataclasses import dataclass

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


class Closed(Exception):
    """The server closed the websocket (``code``) or the connection."""

    def __init__(self, code: int | None) -> None:
        super().__init__(code)
        self.code = code


def _handshake(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nOrigin: http://{host}:{port}\r\n\r\n"
    ).encode()


def connect_unread(host: str, port: int, path: str, *, receive_buffer_bytes: int) -> socket.socket:
    """A websocket that is opened and then never read: the peer of a stalled browser. (An
    asyncio stream would keep reading into its own buffer.)"""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
    sock.connect((host, port))
    sock.sendall(_handshake(host, port, path))
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing past the handshake is read
    if not head.startswith(b"HTTP/1.1 101"):
        sock.close()
        raise Closed(int(head.split()[1]))
    return sock


class WebSocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str) -> WebSocket:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
        writer.write(_handshake(host, port, path))
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise Closed(int(head.split()[1]))
        return cls(reader, writer)

    async def receive(self) -> str:
        """The next text message; answers pings; raises Closed at the end."""
        while True:
            try:
                first, second = await self.reader.readexactly(2)
            except (asyncio.IncompleteReadError, ConnectionError):
                raise Closed(None) from None
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
            if opcode == OP_CLOSE:
                raise Closed(struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None)
            if opcode == OP_PING:
                self._send(OP_PONG, payload)
            elif opcode == OP_TEXT:
                return payload.decode()

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        header = bytes([0x80 | opcode])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def close(self) -> None:
        self.writer.close()


@dataclass
class FollowedRun:
    batches: int = 0  # "samples" frames
    samples: int = 0
    status: str = ""
    reason: str = ""


async def follow_run(ws: WebSocket) -> FollowedRun:
    """Read a run page's stream as the page would, until the run's final status."""
    seen = FollowedRun()
    while True:
        text = await ws.receive()
        if text.startswith("{"):
            frame = json.loads(text)
            if frame["kind"] == "snapshot":
                seen.samples = len(frame["samples"])
            elif frame["kind"] == "samples":
                seen.batches += 1
                seen.samples += len(frame["samples"])
            continue
        for status in ("succeeded", "failed", "cancelled", "timed_out"):
            if f'data-status="{status}"' in text:
                seen.status = status
                seen.reason = text.split('class="reason">', 1)[-1].split("<", 1)[0]
                return seen
