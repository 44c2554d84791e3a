"""TCP on the sandbox's own loopback, as the network experiments need it: a listener, a
non-blocking connect that shows EINPROGRESS, whole-message send and receive that count their
calls, and /proc/net/tcp decoded from its hex.

Everything binds and connects to 127.0.0.1 only: inside the sandbox that is the loopback of its
own network namespace, so no packet can reach a host interface.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT_MS = 5_000
PROC_NET_TCP_PATH = Path("/proc/net/tcp")
# /proc/net/tcp's "tm->when" is in clock ticks (USER_HZ), 100 a second on every Linux ABI.
USER_HZ = 100

# include/net/tcp_states.h
TCP_STATES = {
    0x01: "ESTABLISHED",
    0x02: "SYN_SENT",
    0x03: "SYN_RECV",
    0x04: "FIN_WAIT1",
    0x05: "FIN_WAIT2",
    0x06: "TIME_WAIT",
    0x07: "CLOSE",
    0x08: "CLOSE_WAIT",
    0x09: "LAST_ACK",
    0x0A: "LISTEN",
    0x0B: "CLOSING",
}
# The "tr" column of /proc/net/tcp (net/ipv4/tcp_ipv4.c, get_tcp4_sock).
TCP_TIMERS = {
    0: "none",
    1: "retransmit",
    2: "keepalive",
    3: "TIME_WAIT",
    4: "zero window probe",
}


def listener(backlog: int, *, port: int = 0, reuseaddr: bool = False) -> socket.socket:
    """socket, (SO_REUSEADDR), bind 127.0.0.1:port (0: any free port), listen."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def connect(port: int, sock: socket.socket | None = None) -> tuple[socket.socket, int]:
    """A non-blocking connect to 127.0.0.1:port, so the trace shows the handshake's states:
    connect → EINPROGRESS, poll until writable, getsockopt(SO_ERROR) → 0. Returns the socket,
    blocking again, and the errno connect() itself returned (EINPROGRESS, or 0 when the
    handshake finished within the call)."""
    sock = sock or socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        first = sock.connect_ex((LOOPBACK, port))
        err = first
        if first == errno.EINPROGRESS:
            poller = select.poll()
            poller.register(sock, select.POLLOUT)
            err = (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if poller.poll(CONNECT_TIMEOUT_MS)
                else errno.ETIMEDOUT
            )
        if err:
            raise OSError(err, f"connect to {LOOPBACK}:{port}: {os.strerror(err)}")
        sock.setblocking(True)
    except OSError:
        sock.close()
        raise
    return sock, first


def send_all(sock: socket.socket, view: memoryview) -> int:
    """Send every byte of ``view``; returns the number of send calls it took."""
    calls = 0
    while view:
        view = view[sock.send(view) :]
        calls += 1
    return calls


def recv_exact(sock: socket.socket, view: memoryview) -> int:
    """Fill ``view`` from the socket; returns the recv calls it took, or 0 when the peer closed
    before the first byte. EOF in the middle of a message is ConnectionResetError."""
    calls = got = 0
    size = len(view)
    while got < size:
        n = sock.recv_into(view[got:], size - got)
        calls += 1
        if n == 0:
            if got == 0:
                return 0
            raise ConnectionResetError(errno.ECONNRESET, "EOF in the middle of a message")
        got += n
    return calls


def drain(sock: socket.socket, buffer_bytes: int) -> tuple[int, int]:
    """Read until the peer's EOF; returns (bytes read, recv calls)."""
    view = memoryview(bytearray(buffer_bytes))
    received = calls = 0
    while n := sock.recv_into(view):
        calls += 1
        received += n
    return received, calls + 1


@dataclass(frozen=True)
class TcpEntry:
    """One line of /proc/net/tcp, with the hex it was decoded from."""

    local: str
    remote: str
    state: str
    timer: str
    timer_s: float
    tx_queue_bytes: int
    rx_queue_bytes: int
    raw: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _address(hex_address: str) -> str:
    # The kernel prints the __be32 address as a native-endian u32 ("%08X") and the port in
    # host order: "0100007F:1F90" is 127.0.0.1:8080 on a little-endian machine.
    ip_hex, port_hex = hex_address.split(":")
    ip = socket.inet_ntoa(struct.pack("=I", int(ip_hex, 16)))
    return f"{ip}:{int(port_hex, 16)}"


def parse_proc_net_tcp(text: str) -> list[TcpEntry]:
    entries = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        tx_hex, rx_hex = fields[4].split(":")
        timer_hex, when_hex = fields[5].split(":")
        entries.append(
            TcpEntry(
                local=_address(fields[1]),
                remote=_address(fields[2]),
                state=TCP_STATES.get(int(fields[3], 16), f"0x{fields[3]}"),
                timer=TCP_TIMERS.get(int(timer_hex, 16), f"0x{timer_hex}"),
                timer_s=int(when_hex, 16) / USER_HZ,
                tx_queue_bytes=int(tx_hex, 16),
                rx_queue_bytes=int(rx_hex, 16),
                raw={
                    "local_address": fields[1],
                    "rem_address": fields[2],
                    "st": fields[3],
                    "tr_tm_when": fields[5],
                },
            )
        )
    return entries


def proc_net_tcp(port: int | None = None) -> list[TcpEntry]:
    """The IPv4 TCP sockets of this network namespace (the sandbox's own, inside it), those
    with ``port`` at either end when given."""
    try:
        entries = parse_proc_net_tcp(PROC_NET_TCP_PATH.read_text())
    except OSError:
        return []
    if port is None:
        return entries
    suffix = f":{port}"
    return [e for e in entries if e.local.endswith(suffix) or e.remote.endswith(suffix)]
