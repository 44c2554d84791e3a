"""What setsockopt and getsockopt change, each shown by its effect on the sandbox's loopback.

Sandbox side: standard library and sysops.worker only. Scenarios:

- ``nodelay``: the write-write-read pattern with Nagle on, with TCP_NODELAY, and as one write;
- ``buffers``: SO_RCVBUF/SO_SNDBUF requested against granted, and throughput under a small
  receive buffer;
- ``reuseaddr``: rebinding a port that a TIME_WAIT socket holds, without and with SO_REUSEADDR;
- ``keepalive``: SO_KEEPALIVE/TCP_KEEPIDLE probes on an idle connection, seen in TCP_INFO;
- ``linger``: SO_LINGER {on, 0}: close sends RST and the peer's recv gets ECONNRESET;
- ``tos``: IP_TOS on a TCP socket (ECN bits kept by the kernel) and on a datagram the receiver
  sees it in (IP_RECVTOS);
- ``rcvlowat``: SO_RCVLOWAT holds poll's POLLIN back until that many bytes are queued.

Every getsockopt value goes to the page with its level, name and unit (panel ``sockopts``).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import select
import socket
import statistics
import struct
import termios
import time
from collections.abc import Callable, Mapping
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit import hostfacts, netns, params, sockets
from sysops.worker.toolkit.harness import Child, ChildContext
from sysops.worker.toolkit.rows import dist_row, errno_name, errno_row, facts_rows, row
from sysops.worker.toolkit.stats import Distribution

SCENARIOS = ("nodelay", "buffers", "reuseaddr", "keepalive", "linger", "tos", "rcvlowat")
LEVEL_NAMES = {
    socket.SOL_SOCKET: "SOL_SOCKET",
    socket.IPPROTO_TCP: "IPPROTO_TCP",
    socket.IPPROTO_IP: "IPPROTO_IP",
}
EXCHANGES_MAX = 200
KEEPIDLE_S_MAX = 10
SERVER_STOP_TIMEOUT_S = 10.0
PEER_TIMEOUT_S = 2.0
SYSCTLS = (
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.rmem_default",
    "net.core.wmem_default",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
)

# nodelay: a small header and a small body, then the reply.
HEADER_BYTES = 8
BODY_BYTES = 32
REPLY_BYTES = 16
NAGLE_VARIANTS = {
    "nagle": "write, write, read — Nagle on (the default)",
    "nodelay": "write, write, read — TCP_NODELAY",
    "one_write": "one write, read — Nagle on",
}

# buffers: requests swept in powers of two, and the receive buffers tried under bulk load.
BUFFER_REQUEST_EXPONENTS = range(8, 26)  # 256 B … 32 MiB
SMALL_RCVBUF_BYTES = (4_096, 16_384, 65_536, 262_144, 1_048_576)
BULK_MESSAGE_BYTES = 65_536
BULK_SECONDS = 0.3

# keepalive
KEEPINTVL_S = 1
KEEPCNT = 3
KEEPALIVE_EXTRA_WAIT_S = 1.5
TCP_INFO_BYTES = 104
TCP_INFO_LAST_ACK_RECV_OFFSET = 56  # struct tcp_info: u32 tcpi_last_ack_recv, in ms

# tos
DSCP_EF_TOS = 0xB8  # DSCP 46 (expedited forwarding) << 2
TOS_WITH_ECN = DSCP_EF_TOS | 0x03  # the two low bits are ECN, which TCP keeps to itself

# rcvlowat
RCVLOWAT_BYTES = 500
LOWAT_CHUNK_BYTES = 100
LOWAT_CHUNKS = 8
DELIVERY_WAIT_S = 1.0  # loopback delivers within send(); the wait only matters under load


def run(params_: Mapping[str, Any], emit: Emitter) -> None:
    chosen = params.subset(params_, "scenarios", SCENARIOS)
    exchanges = params.bounded_int(params_, "exchanges", 1, EXCHANGES_MAX, 20)
    keepidle_s = params.bounded_int(params_, "keepidle_s", 1, KEEPIDLE_S_MAX, 1)
    handlers: dict[str, Callable[[Emitter], list[dict[str, Any]]]] = {
        "nodelay": lambda e: _nodelay(exchanges, e),
        "buffers": _buffers,
        "reuseaddr": _reuseaddr,
        "keepalive": lambda e: _keepalive(keepidle_s, e),
        "linger": _linger,
        "tos": _tos,
        "rcvlowat": _rcvlowat,
    }
    rows: list[dict[str, Any]] = []
    counters_before = netns.interface_counters()
    for done, name in enumerate(chosen):
        emit.phase(name)
        emit.progress(done / len(chosen), name)
        rows += handlers[name](emit)
    rows += netns.namespace_rows(
        counters_before,
        netns.interface_counters(),
        during="the scenarios",
        note="from /proc/net/dev: every packet the scenarios sent, all on lo",
    )
    facts = {**hostfacts.sysctls(*SYSCTLS), "kernel": hostfacts.kernel_release()}
    emit.result(rows + facts_rows(facts, "host fact the results depend on"))


def _option(
    sock: socket.socket,
    level: int,
    name: str,
    unit: str,
    meaning: str,
    *,
    set_value: Any = None,
    size: int = 0,
) -> dict[str, Any]:
    """getsockopt(level, name) as the panel shows it: level and option names, the value set
    (if any), the value read back, its unit."""
    number = getattr(socket, name)
    # With a size, getsockopt returns the raw bytes (a struct); without, an int.
    got = sock.getsockopt(level, number, size) if size else sock.getsockopt(level, number)
    if name == "SO_LINGER":
        onoff, seconds = struct.unpack("ii", got)
        got = f"l_onoff={onoff}, l_linger={seconds}"
    return {
        "level": LEVEL_NAMES[level],
        "name": name,
        "set": set_value,
        "got": got,
        "unit": unit,
        "meaning": meaning,
    }


def _options_row(metric: str, options: list[dict[str, Any]], note: str) -> dict[str, Any]:
    return row(
        metric,
        len(options),
        "options",
        note,
        detail={"panel": "sockopts", "options": options},
    )


class _Pair:
    """A connected pair on loopback inside this process: the client and the accepted peer."""

    def __init__(self, configure: Callable[[socket.socket], None] = lambda sock: None) -> None:
        self.listener = sockets.listener(1)
        self.port = self.listener.getsockname()[1]
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        configure(client)
        self.client, _ = sockets.connect(self.port, client)
        self.peer, _ = self.listener.accept()
        self.listener.close()

    def close(self) -> None:
        for sock in (self.client, self.peer):
            sock.close()


# --- TCP_NODELAY: Nagle + delayed ACK -----------------------------------------------------------


def _nagle_server(variants: int) -> Callable[[ChildContext], dict]:
    def main(ctx: ChildContext) -> dict:
        listener = sockets.listener(variants)
        ctx.report({"port": listener.getsockname()[1]})
        header = memoryview(bytearray(HEADER_BYTES))
        body = memoryview(bytearray(BODY_BYTES))
        reply = memoryview(b"r" * REPLY_BYTES)
        served = 0
        for _ in range(variants):
            conn, _ = listener.accept()
            # Read the header, then wait for the body: with nothing to send meanwhile, the
            # kernel delays the ACK of the header (delayed ACK), which Nagle is waiting for.
            while sockets.recv_exact(conn, header) and sockets.recv_exact(conn, body):
                sockets.send_all(conn, reply)
                served += 1
            conn.close()
        listener.close()
        return {"served": served}

    return main


def _nodelay(exchanges: int, emit: Emitter) -> list[dict[str, Any]]:
    server = Child.start(_nagle_server(len(NAGLE_VARIANTS)), name="request server")
    latencies: dict[str, list[float]] = {}
    options: list[dict[str, Any]] = []
    try:
        for variant in NAGLE_VARIANTS:
            sock, _ = sockets.connect(server.ready["port"])
            try:
                if variant == "nodelay":
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                options.append(
                    _option(
                        sock,
                        socket.IPPROTO_TCP,
                        "TCP_NODELAY",
                        "boolean",
                        NAGLE_VARIANTS[variant],
                        set_value=1 if variant == "nodelay" else None,
                    )
                )
                latencies[variant] = _exchanges(sock, variant, exchanges, emit)
            finally:
                sock.close()
        final = server.stop(SERVER_STOP_TIMEOUT_S) or {}
    finally:
        server.kill_if_running()
    if "error" in final:
        raise RuntimeError(f"the request server failed: {final['error']}")
    nagle_ms = Distribution.of(latencies["nagle"]).median
    nodelay_ms = Distribution.of(latencies["nodelay"]).median
    rows = [
        dist_row(
            f"per exchange · {NAGLE_VARIANTS[variant]}",
            values,
            "ms",
            _nagle_note(variant),
        )
        for variant, values in latencies.items()
    ]
    rows.append(
        row(
            "Nagle + delayed ACK stall",
            round(nagle_ms - nodelay_ms, 2),
            "ms",
            f"median with Nagle on minus median with TCP_NODELAY over {exchanges} exchanges: the "
            "second small write waits for the ACK of the first, which the server's kernel "
            "delays (delayed ACK, ~40 ms minimum on Linux) because the server has nothing to "
            "send until the body arrives. One write per request, or TCP_NODELAY, or TCP_CORK "
            "around the writes avoids it.",
        )
    )
    rows.append(_options_row("TCP_NODELAY read back", options, "getsockopt per connection"))
    return rows


def _exchanges(sock: socket.socket, variant: str, exchanges: int, emit: Emitter) -> list[float]:
    header = memoryview(b"h" * HEADER_BYTES)
    body = memoryview(b"b" * BODY_BYTES)
    whole = memoryview(bytes(header) + bytes(body))
    reply = memoryview(bytearray(REPLY_BYTES))
    values = []
    for i in range(exchanges):
        start_ns = time.perf_counter_ns()
        if variant == "one_write":
            sockets.send_all(sock, whole)
        else:
            sockets.send_all(sock, header)
            sockets.send_all(sock, body)
        if not sockets.recv_exact(sock, reply):
            raise ConnectionResetError(errno.ECONNRESET, "the request server closed early")
        ms = (time.perf_counter_ns() - start_ns) / 1e6
        values.append(ms)
        emit.sample(variant, i, round(ms, 3))
    return values


def _nagle_note(variant: str) -> str:
    return {
        "nagle": "Nagle holds the body while the header is unacknowledged; the server's delayed "
        "ACK releases it after ~40 ms (the first exchanges may be quick: Linux ACKs at once "
        "until it sees an interactive exchange).",
        "nodelay": "TCP_NODELAY: the body leaves at once, no stall.",
        "one_write": "The plain request/response pattern: a single write has nothing "
        "unacknowledged before it, so Nagle never holds it.",
    }[variant]


# --- SO_RCVBUF / SO_SNDBUF ----------------------------------------------------------------------


def _buffers(emit: Emitter) -> list[dict[str, Any]]:
    facts = hostfacts.sysctls("net.core.rmem_max", "net.core.wmem_max", "net.ipv4.tcp_rmem")
    options: list[dict[str, Any]] = []
    granted: dict[str, list[tuple[int, int]]] = {"SO_RCVBUF": [], "SO_SNDBUF": []}
    fresh = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with fresh:
        for name in granted:
            options.append(
                _option(fresh, socket.SOL_SOCKET, name, "bytes", "unset: tcp_rmem/tcp_wmem default")
            )
    for exponent in BUFFER_REQUEST_EXPONENTS:
        requested = 1 << exponent
        for name in granted:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, getattr(socket, name), requested)
                got = sock.getsockopt(socket.SOL_SOCKET, getattr(socket, name))
            granted[name].append((requested, got))
            emit.sample(name.lower(), requested, got)
            options.append(
                {
                    "level": "SOL_SOCKET",
                    "name": name,
                    "set": requested,
                    "got": got,
                    "unit": "bytes",
                    "meaning": f"granted/requested = {got / requested:.3g}",
                }
            )
    rows = []
    for name, sysctl in (("SO_RCVBUF", "net.core.rmem_max"), ("SO_SNDBUF", "net.core.wmem_max")):
        points = granted[name]
        cap, floor = max(got for _, got in points), min(got for _, got in points)
        between = [(req, got) for req, got in points if floor < got < cap]
        doubled = sum(1 for req, got in between if got == 2 * req)
        limit = hostfacts.sysctl(sysctl)
        rows.append(
            row(
                f"{name} granted / requested, between floor and cap",
                round(statistics.median(got / req for req, got in between), 3) if between else None,
                "×",
                "the kernel doubles the request (the other half is for its bookkeeping: sk_buff "
                f"headers and slack); {doubled} of {len(between)} requests between the floor "
                "and the cap came back exactly doubled",
            )
        )
        rows.append(
            row(
                f"{name} cap",
                cap,
                "bytes",
                f"the largest value granted: 2 × {sysctl} ({limit} bytes here), first reached "
                f"at a request of {min(req for req, got in points if got == cap):,} bytes (the "
                "curve's knee); a larger request is silently cut to it (CAP_NET_ADMIN can pass "
                "the cap with SO_RCVBUFFORCE/SO_SNDBUFFORCE)",
            )
        )
        rows.append(
            row(
                f"{name} floor",
                min(got for _, got in points),
                "bytes",
                "a tiny request is raised to the kernel's minimum (SOCK_MIN_RCVBUF/SNDBUF)",
            )
        )
    rows += _small_rcvbuf_throughput(emit)
    rows.append(
        _options_row(
            "SO_RCVBUF / SO_SNDBUF read back",
            options,
            f"tcp_rmem here: {facts.get('net.ipv4.tcp_rmem')} (min default max bytes)",
        )
    )
    return rows


def _sink_server(rcvbuf_bytes: int | None) -> Callable[[ChildContext], dict]:
    def main(ctx: ChildContext) -> dict:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf_bytes is not None:
            # Before listen: the window scale is agreed in the handshake, from this size.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf_bytes)
        listener.bind((sockets.LOOPBACK, 0))
        listener.listen(1)
        ctx.report({"port": listener.getsockname()[1]})
        conn, _ = listener.accept()
        listener.close()
        got = conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        received, calls = sockets.drain(conn, BULK_MESSAGE_BYTES)
        end = conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        conn.close()
        return {"bytes": received, "recv_calls": calls, "rcvbuf": got, "rcvbuf_end": end}

    return main


def _small_rcvbuf_throughput(emit: Emitter) -> list[dict[str, Any]]:
    rows = []
    message = memoryview(bytes(BULK_MESSAGE_BYTES))
    for rcvbuf in (*SMALL_RCVBUF_BYTES, None):
        server = Child.start(_sink_server(rcvbuf), name="receiver")
        try:
            sock, _ = sockets.connect(server.ready["port"])
            start_ns = time.monotonic_ns()
            with sock:
                while time.monotonic_ns() - start_ns < BULK_SECONDS * 1e9:
                    sockets.send_all(sock, message)
                sock.shutdown(socket.SHUT_WR)
                sock.recv(1)  # the receiver's FIN: it has read everything
            elapsed_ns = time.monotonic_ns() - start_ns
            final = server.stop(SERVER_STOP_TIMEOUT_S) or {}
        finally:
            server.kill_if_running()
        if "error" in final:
            raise RuntimeError(f"the receiver failed: {final['error']}")
        mb_s = final["bytes"] / elapsed_ns * 1e3
        if rcvbuf is not None:
            emit.sample("throughput", rcvbuf, round(mb_s, 1))
        label = f"SO_RCVBUF {rcvbuf:,} B" if rcvbuf else "no SO_RCVBUF (autotuned)"
        rows.append(
            row(
                f"throughput, receiver with {label}",
                round(mb_s, 1),
                "MB/s",
                f"SO_RCVBUF read {final['rcvbuf']:,} B at accept, {final['rcvbuf_end']:,} B at "
                "the end; "
                + (
                    "a fixed buffer turns autotuning off and bounds the window: at most that "
                    "much in flight per round trip"
                    if rcvbuf
                    else "the kernel grows the buffer up to tcp_rmem's max as the flow needs"
                ),
            )
        )
    return rows


# --- SO_REUSEADDR and TIME_WAIT -----------------------------------------------------------------


def _time_wait_port(listener_reuseaddr: bool) -> tuple[int, list[sockets.TcpEntry]]:
    """A server port whose accepted connection the server closed first: TIME_WAIT there."""
    listener = sockets.listener(1, reuseaddr=listener_reuseaddr)
    port = listener.getsockname()[1]
    client, _ = sockets.connect(port)
    conn, _ = listener.accept()
    conn.close()  # the active close: this side goes through FIN_WAIT to TIME_WAIT
    client.settimeout(PEER_TIMEOUT_S)
    client.recv(1)  # the server's FIN
    client.close()
    listener.close()
    return port, [e for e in sockets.proc_net_tcp(port) if e.local.endswith(f":{port}")]


def _rebind(port: int, reuseaddr: bool) -> OSError | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuseaddr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((sockets.LOOPBACK, port))
            sock.listen(1)
        except OSError as exc:
            return exc
    return None


def _reuseaddr(emit: Emitter) -> list[dict[str, Any]]:
    port, entries = _time_wait_port(listener_reuseaddr=True)
    without = _rebind(port, reuseaddr=False)
    with_ = _rebind(port, reuseaddr=True)
    old_port, _ = _time_wait_port(listener_reuseaddr=False)
    old_without_flag = _rebind(old_port, reuseaddr=True)
    probe_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with probe_sock:
        probe_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        options = [
            _option(
                probe_sock,
                socket.SOL_SOCKET,
                "SO_REUSEADDR",
                "boolean",
                "bind may share a port with sockets in TIME_WAIT (not with a listener)",
                set_value=1,
            )
        ]
    time_wait = [e for e in entries if e.state == "TIME_WAIT"]
    return [
        row(
            "TIME_WAIT sockets on the port",
            len(time_wait),
            "sockets",
            f"/proc/net/tcp of the sandbox after the server closed first: 127.0.0.1:{port} in "
            "TIME_WAIT for 2×MSL (60 s on Linux), so late segments of the old connection cannot "
            "be taken for a new one",
            detail={"panel": "proc_net_tcp", "entries": [e.to_dict() for e in entries]},
        ),
        errno_row(
            "bind without SO_REUSEADDR",
            without,
            "— the TIME_WAIT socket still holds the port",
        ),
        errno_row(
            "bind with SO_REUSEADDR",
            with_,
            "— allowed to share the port with a TIME_WAIT socket (a restarting server)",
        ),
        errno_row(
            "bind with SO_REUSEADDR, old listener without it",
            old_without_flag,
            "— both sides must have it: the TIME_WAIT socket keeps its listener's setting, "
            "which is why servers set SO_REUSEADDR before the first bind",
        ),
        _options_row("SO_REUSEADDR read back", options, "getsockopt after setsockopt(…, 1)"),
    ]


# --- SO_KEEPALIVE / TCP_KEEPIDLE ----------------------------------------------------------------


def _last_ack_recv_ms(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_BYTES)
    return struct.unpack_from("I", info, TCP_INFO_LAST_ACK_RECV_OFFSET)[0]


def _keepalive(keepidle_s: int, emit: Emitter) -> list[dict[str, Any]]:
    def configure(sock: socket.socket) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, keepidle_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPINTVL_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPCNT)

    plain, keep = _Pair(), _Pair(configure)
    try:
        for pair in (plain, keep):
            pair.client.sendall(b"x")
            pair.peer.recv(1)
        wait_s = keepidle_s + KEEPALIVE_EXTRA_WAIT_S
        emit.log(f"keepalive: both connections idle for {wait_s:g} s")
        time.sleep(wait_s)
        plain_ms, keep_ms = _last_ack_recv_ms(plain.client), _last_ack_recv_ms(keep.client)
        # The clients' own lines: the keepalive timer ("tr" 2) runs on one of them only.
        by_local = {e.local: e for e in sockets.proc_net_tcp()}
        keep_entry = by_local.get(f"{sockets.LOOPBACK}:{keep.client.getsockname()[1]}")
        plain_entry = by_local.get(f"{sockets.LOOPBACK}:{plain.client.getsockname()[1]}")
        options = [
            _option(keep.client, socket.SOL_SOCKET, "SO_KEEPALIVE", "boolean", "probe when idle"),
            _option(
                keep.client,
                socket.IPPROTO_TCP,
                "TCP_KEEPIDLE",
                "s",
                "idle time before the first probe",
                set_value=keepidle_s,
            ),
            _option(
                keep.client,
                socket.IPPROTO_TCP,
                "TCP_KEEPINTVL",
                "s",
                "between probes",
                set_value=KEEPINTVL_S,
            ),
            _option(
                keep.client,
                socket.IPPROTO_TCP,
                "TCP_KEEPCNT",
                "probes",
                "unanswered probes before the connection is dropped (ETIMEDOUT)",
                set_value=KEEPCNT,
            ),
            _option(plain.client, socket.SOL_SOCKET, "SO_KEEPALIVE", "boolean", "the default"),
        ]
    finally:
        plain.close()
        keep.close()
    entries = [e.to_dict() for e in (keep_entry, plain_entry) if e is not None]
    return [
        row(
            "last ACK received, without keepalive",
            plain_ms,
            "ms ago",
            f"tcpi_last_ack_recv from TCP_INFO after {wait_s:g} s idle: nothing crossed the wire",
        ),
        row(
            "last ACK received, with keepalive",
            keep_ms,
            "ms ago",
            f"after {keepidle_s} s idle the kernel sent a probe (an already-acknowledged byte) "
            f"every {KEEPINTVL_S} s and the peer's kernel ACKed it: the connection is known to "
            f"be alive; {KEEPCNT} unanswered probes would end it with ETIMEDOUT",
            detail={"panel": "proc_net_tcp", "entries": entries},
        ),
        _options_row("keepalive options read back", options, "getsockopt on both clients"),
    ]


# --- SO_LINGER {1, 0} ---------------------------------------------------------------------------


def _linger(emit: Emitter) -> list[dict[str, Any]]:
    outcomes: dict[str, tuple[OSError | None, bytes, int]] = {}
    options = []
    for variant in ("close", "linger0"):
        pair = _Pair()
        client_port = pair.client.getsockname()[1]
        if variant == "linger0":
            pair.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            options.append(
                _option(
                    pair.client,
                    socket.SOL_SOCKET,
                    "SO_LINGER",
                    "struct linger (on, s)",
                    "on with 0 s: close() discards and sends RST",
                    set_value="l_onoff=1, l_linger=0",
                    size=8,
                )
            )
        pair.client.close()
        pair.peer.settimeout(PEER_TIMEOUT_S)
        err: OSError | None = None
        data = b""
        try:
            data = pair.peer.recv(1)
        except OSError as exc:
            err = exc
        pair.peer.close()
        left = [
            e
            for e in sockets.proc_net_tcp()
            if e.local == f"{sockets.LOOPBACK}:{client_port}" and e.state == "TIME_WAIT"
        ]
        outcomes[variant] = (err, data, len(left))
    close_err, close_data, close_tw = outcomes["close"]
    rst_err, _, rst_tw = outcomes["linger0"]
    emit.log(f"linger: plain close → peer read {close_data!r}; linger 0 → {errno_name(rst_err)}")
    return [
        errno_row(
            "peer's recv after a plain close",
            close_err,
            f"— recv returned {len(close_data)} bytes: EOF, the FIN arrived; the closing side "
            f"keeps {close_tw} TIME_WAIT socket",
        ),
        errno_row(
            "peer's recv after close with SO_LINGER {1, 0}",
            rst_err,
            f"— close sent RST instead of FIN: the peer's recv fails; {rst_tw} TIME_WAIT socket "
            "left (an abortive close skips it, and any unsent data is thrown away)",
        ),
        _options_row("SO_LINGER read back", options, "getsockopt before close"),
    ]


# --- IP_TOS -------------------------------------------------------------------------------------


def _received_tos(receiver: socket.socket) -> int | None:
    _, ancillary, _, _ = receiver.recvmsg(64, socket.CMSG_SPACE(4))
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == socket.IP_TOS:
            return data[0]
    return None


def _tos(emit: Emitter) -> list[dict[str, Any]]:
    options = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        options.append(_option(tcp, socket.IPPROTO_IP, "IP_TOS", "byte", "TCP default"))
        tcp.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, TOS_WITH_ECN)
        tcp_got = tcp.getsockopt(socket.IPPROTO_IP, socket.IP_TOS)
        options.append(
            _option(
                tcp,
                socket.IPPROTO_IP,
                "IP_TOS",
                "byte",
                "TCP: DSCP kept, the ECN bits are the stack's own",
                set_value=hex(TOS_WITH_ECN),
            )
        )
    received: dict[str, int | None] = {}
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
        receiver.bind((sockets.LOOPBACK, 0))
        receiver.settimeout(PEER_TIMEOUT_S)
        address = receiver.getsockname()
        sender.sendto(b"default", address)
        received["default"] = _received_tos(receiver)
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, DSCP_EF_TOS)
        options.append(
            _option(
                sender,
                socket.IPPROTO_IP,
                "IP_TOS",
                "byte",
                "UDP sender: DSCP 46 (EF)",
                set_value=hex(DSCP_EF_TOS),
            )
        )
        sender.sendto(b"ef", address)
        received["ef"] = _received_tos(receiver)
    return [
        row(
            "TOS byte received, sender default",
            received["default"],
            "byte",
            "IP_RECVTOS on the receiver hands over each datagram's IP header TOS byte",
        ),
        row(
            "TOS byte received, sender IP_TOS 0xb8",
            received["ef"],
            "byte",
            "DSCP 46 (expedited forwarding) << 2: the byte the sender set is in the IP header "
            "that arrived (0xb8 = 184)",
        ),
        row(
            "IP_TOS on TCP: set 0xbb, read back",
            tcp_got,
            "byte",
            "TCP keeps the two ECN bits for congestion notification and clears them from the "
            "value you set (0xbb → 0xb8)",
        ),
        _options_row("IP_TOS read back", options, "IPPROTO_IP level"),
    ]


# --- SO_RCVLOWAT --------------------------------------------------------------------------------


def _queued_bytes(sock: socket.socket) -> int:
    value = ctypes.c_int()
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, value)  # SIOCINQ for TCP
    return value.value


def _rcvlowat(emit: Emitter) -> list[dict[str, Any]]:
    first_readable: dict[str, int | None] = {}
    options = []
    chunk = memoryview(b"l" * LOWAT_CHUNK_BYTES)
    for variant, lowat in (("default", None), ("rcvlowat", RCVLOWAT_BYTES)):
        pair = _Pair()
        try:
            # Each chunk must leave at once, not wait on Nagle for the previous one's ACK.
            pair.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if lowat is not None:
                pair.peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, lowat)
            options.append(
                _option(
                    pair.peer,
                    socket.SOL_SOCKET,
                    "SO_RCVLOWAT",
                    "bytes",
                    "POLLIN (and a blocking recv) waits for this many bytes",
                    set_value=lowat,
                )
            )
            poller = select.poll()
            poller.register(pair.peer, select.POLLIN)
            first_readable[variant] = None
            for i in range(1, LOWAT_CHUNKS + 1):
                sockets.send_all(pair.client, chunk)
                queued = _wait_queued(pair.peer, i * LOWAT_CHUNK_BYTES)
                readable = bool(poller.poll(0))
                emit.sample(variant, queued, int(readable))
                if readable and first_readable[variant] is None:
                    first_readable[variant] = queued
        finally:
            pair.close()
    return [
        row(
            "POLLIN first reported, default SO_RCVLOWAT (1)",
            first_readable["default"],
            "bytes queued",
            f"chunks of {LOWAT_CHUNK_BYTES} B: readable as soon as one byte is there",
        ),
        row(
            f"POLLIN first reported, SO_RCVLOWAT {RCVLOWAT_BYTES}",
            first_readable["rcvlowat"],
            "bytes queued",
            "the socket is not readable below the low-water mark: a reader wakes once per "
            "useful amount, not once per segment",
        ),
        _options_row("SO_RCVLOWAT read back", options, "getsockopt on the receiving socket"),
    ]


def _wait_queued(sock: socket.socket, expected: int) -> int:
    """Bytes queued (FIONREAD) once ``expected`` have arrived, or after DELIVERY_WAIT_S."""
    deadline_ns = time.monotonic_ns() + int(DELIVERY_WAIT_S * 1e9)
    queued = _queued_bytes(sock)
    while queued < expected and time.monotonic_ns() < deadline_ns:
        time.sleep(0.001)
        queued = _queued_bytes(sock)
    return queued
