"""epoll echo server under load: every byte sent comes back, or the run says what was lost.

Sandbox side, standard library and the probe toolkit only. The probe forks (toolkit.harness):
the child is a non-blocking echo server on ``select.epoll`` listening on 127.0.0.1, level- or
edge-triggered as asked; the parent drives N closed-loop clients on its own epoll (send S bytes,
read S bytes back, check them, send the next) for ``duration_s``, sampling throughput and
latency every 250 ms, then drains, stops the server and reconciles both sides' byte counts.
The server counts its own syscalls, so the two trigger modes can be compared per request.
"""

from __future__ import annotations

import select
import socket
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit.harness import Child, ChildContext
from sysops.worker.toolkit.params import bounded_float, bounded_int, choice
from sysops.worker.toolkit.rows import dist_row, errno_name, row
from sysops.worker.toolkit.stats import SortedRuns, percentile, supports

CLIENTS_MAX = 256
MESSAGE_BYTES_MAX = 65_536
DURATION_S_MIN, DURATION_S_MAX = 0.5, 60.0
SAMPLE_INTERVAL_MS_DEFAULT = 250
SAMPLE_INTERVAL_MS_MIN, SAMPLE_INTERVAL_MS_MAX = 50, 5_000
DRAIN_TIMEOUT_S = 2.0  # in-flight echoes still missing after this are reported lost
SERVER_START_TIMEOUT_S = 5.0
SERVER_STOP_GRACE_S = 1.0  # the server's time to see the clients' FINs and flush after "stop"
SERVER_EXIT_TIMEOUT_S = 3.0  # > SERVER_STOP_GRACE_S, before SIGTERM and then SIGKILL
CONNECT_TIMEOUT_S = 5.0
LISTEN_BACKLOG = CLIENTS_MAX
RECV_CHUNK_BYTES = 65_536
# A connection whose unsent echo exceeds this stops being read until it drains: a client that
# sends without reading must not grow the server without bound. Closed-loop clients never have
# more than one message (≤ 64 KiB) in flight, so this never triggers in a correct run.
SERVER_OUTPUT_HIGH_WATER_BYTES = 1 << 20
MISMATCH_REPORT_MAX = 10  # mismatches described individually; the rest are counted
TRIGGER_MODES = ("level", "edge")


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    clients, message_bytes, duration_s, interval_ms, trigger_mode = _checked(params)
    emit.phase("start server")
    server = Child.start(
        lambda ctx: _EchoServer(ctx.control_fd, trigger_mode).serve(ctx),
        name="echo server",
        start_timeout_s=SERVER_START_TIMEOUT_S,
    )
    try:
        port = int(server.ready["port"])
        emit.log(f"echo server pid {server.pid} on 127.0.0.1:{port}, {trigger_mode}-triggered")
        load = _Load(clients, message_bytes, emit)
        try:
            load.connect(port)
            emit.phase("load")
            load.drive(duration_s, interval_ms * 1_000_000)
            emit.phase("drain")
            load.drain(DRAIN_TIMEOUT_S)
        finally:
            load.close()
        emit.phase("stop server")
        server_counters = server.stop(SERVER_EXIT_TIMEOUT_S)
    finally:
        server.kill_if_running()
    for note in server.notes:
        emit.log(note, level="warning")
    _report(load, server_counters, trigger_mode, emit)


def _checked(params: Mapping[str, Any]) -> tuple[int, int, float, int, str]:
    return (
        bounded_int(params, "clients", 1, CLIENTS_MAX),
        bounded_int(params, "message_bytes", 1, MESSAGE_BYTES_MAX),
        bounded_float(params, "duration_s", DURATION_S_MIN, DURATION_S_MAX),
        bounded_int(
            params,
            "sample_interval_ms",
            SAMPLE_INTERVAL_MS_MIN,
            SAMPLE_INTERVAL_MS_MAX,
            SAMPLE_INTERVAL_MS_DEFAULT,
        ),
        # Runs stored before the option existed were level-triggered.
        choice(params, "trigger_mode", TRIGGER_MODES, "level"),
    )


# --- the server (child process) -------------------------------------------------------------


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    interest: int = select.EPOLLIN
    out: bytearray = field(default_factory=bytearray)
    peer_closed: bool = False
    # Edge-triggered bookkeeping: False once a recv (send) hit EAGAIN, until the next edge.
    can_read: bool = True
    can_write: bool = True


class _EchoServer:
    def __init__(self, control_fd: int, trigger_mode: str = "level") -> None:
        self.control_fd = control_fd
        self.edge = trigger_mode == "edge"
        self.epoll = select.epoll()
        self.connections: dict[int, _Connection] = {}
        self.accepted = 0
        self.bytes_received = 0
        self.bytes_echoed = 0
        self.calls: Counter[str] = Counter()  # epoll_wait, recv, send, epoll_ctl, EAGAIN
        self.errors: Counter[str] = Counter()

    def serve(self, ctx: ChildContext) -> dict[str, Any]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(LISTEN_BACKLOG)
        listener.setblocking(False)
        # The listener stays level-triggered in both modes: _accept gives up on EMFILE with
        # connections still queued, and an edge would not be reported for them again.
        self.epoll.register(listener.fileno(), select.EPOLLIN)
        self.epoll.register(self.control_fd, select.EPOLLIN)
        ctx.report({"port": listener.getsockname()[1]})

        stop_deadline_ns: int | None = None
        while stop_deadline_ns is None or (
            self.connections and time.monotonic_ns() < stop_deadline_ns
        ):
            timeout_s = -1.0
            if stop_deadline_ns is not None:
                timeout_s = max(0.0, (stop_deadline_ns - time.monotonic_ns()) / 1e9)
            self.calls["epoll_wait"] += 1
            for fd, events in self.epoll.poll(timeout_s):
                if fd == listener.fileno():
                    self._accept(listener)
                elif fd == self.control_fd:
                    # EOF: the parent is done (or gone). Keep serving until the clients'
                    # closes arrive, so that the counters below are final.
                    self.epoll.unregister(self.control_fd)
                    stop_deadline_ns = time.monotonic_ns() + int(SERVER_STOP_GRACE_S * 1e9)
                else:
                    self._serve_connection(fd, events)

        counters = {
            "accepted": self.accepted,
            "bytes_received": self.bytes_received,
            "bytes_echoed": self.bytes_echoed,
            "calls": dict(self.calls),
            "errors": dict(self.errors),
            "open_at_stop": len(self.connections),
            "unsent_bytes_at_stop": sum(len(conn.out) for conn in self.connections.values()),
        }
        for fd in list(self.connections):
            self._close(fd)
        listener.close()
        self.epoll.close()
        return counters

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # e.g. EMFILE: count it, keep serving the others
                self._count_error(exc)
                return
            sock.setblocking(False)
            # Echo each chunk at once: with Nagle, a message's tail waits for the client's
            # delayed ACK (a 40 ms stall per request).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock)
            if self.edge:
                # Both directions, once: an edge-triggered socket is never modified, and
                # EPOLLOUT fires only when room appears after a send hit EAGAIN.
                conn.interest = select.EPOLLIN | select.EPOLLOUT | select.EPOLLET
            self.connections[sock.fileno()] = conn
            self.epoll.register(sock.fileno(), conn.interest)
            self.accepted += 1

    def _serve_connection(self, fd: int, events: int) -> None:
        conn = self.connections.get(fd)
        if conn is None:  # closed earlier in this batch of events
            return
        try:
            if self.edge:
                self._serve_edge(conn, events)
            else:
                if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    self._read(conn)
                if conn.out:
                    self._flush(conn)
        except OSError as exc:  # ECONNRESET, EPIPE: the peer is gone mid-echo
            self._count_error(exc)
            self._close(fd)
            return
        if conn.peer_closed and not conn.out:
            self._close(fd)
            return
        if not self.edge:
            self._update_interest(fd, conn)

    def _serve_edge(self, conn: _Connection, events: int) -> None:
        """Edge-triggered: each edge is reported once, so read and write until EAGAIN (or
        until there is nothing left to do); stopping earlier strands the rest until the peer
        happens to send again, which a closed-loop client never does."""
        if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
            conn.can_read = True
        if events & select.EPOLLOUT:
            conn.can_write = True
        while True:
            may_read = (
                conn.can_read
                and not conn.peer_closed
                and len(conn.out) < SERVER_OUTPUT_HIGH_WATER_BYTES
            )
            may_write = conn.can_write and bool(conn.out)
            if not may_read and not may_write:
                return
            if may_read:
                self._read(conn)
            if conn.out and conn.can_write:
                self._flush(conn)

    def _read(self, conn: _Connection) -> None:
        # Level-triggered: one recv per readiness event is enough; epoll reports the rest again.
        if len(conn.out) >= SERVER_OUTPUT_HIGH_WATER_BYTES:
            return
        self.calls["recv"] += 1
        try:
            data = conn.sock.recv(RECV_CHUNK_BYTES)
        except BlockingIOError:
            self.calls["recv EAGAIN"] += 1
            conn.can_read = False
            return
        if not data:
            conn.peer_closed = True
            return
        self.bytes_received += len(data)
        conn.out += data

    def _flush(self, conn: _Connection) -> None:
        self.calls["send"] += 1
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            self.calls["send EAGAIN"] += 1
            conn.can_write = False
            return
        self.bytes_echoed += sent
        del conn.out[:sent]

    def _update_interest(self, fd: int, conn: _Connection) -> None:
        # EPOLLOUT only while output is pending: level-triggered, it would otherwise fire on
        # every wait for a socket with room in its send buffer, i.e. always.
        # epoll_ctl only on a change, so a plain echo costs recv + send + epoll_wait.
        interest = 0
        if not conn.peer_closed and len(conn.out) < SERVER_OUTPUT_HIGH_WATER_BYTES:
            interest |= select.EPOLLIN
        if conn.out:
            interest |= select.EPOLLOUT
        if interest != conn.interest:
            self.calls["epoll_ctl"] += 1
            self.epoll.modify(fd, interest)
            conn.interest = interest

    def _close(self, fd: int) -> None:
        conn = self.connections.pop(fd)
        self.epoll.unregister(fd)
        conn.sock.close()

    def _count_error(self, exc: OSError) -> None:
        self.errors[errno_name(exc)] += 1


# --- the clients (parent process) -----------------------------------------------------------


def _message(client: int, request: int, size_bytes: int) -> bytes:
    """Request ``request`` of client ``client``: ``"<request>.<client>;"`` repeated to
    ``size_bytes``, so that a stray or misrouted echo says whose it was in a hex dump, and
    consecutive requests differ even in their first byte most of the time."""
    label = f"{request}.{client};".encode()
    return (label * (size_bytes // len(label) + 1))[:size_bytes]


@dataclass(eq=False)
class _Client:
    index: int
    sock: socket.socket
    interest: int = select.EPOLLIN
    request: int = 0  # the request in flight, or the next one
    expected: bytes = b""
    unsent: memoryview = field(default_factory=lambda: memoryview(b""))
    received: bytearray = field(default_factory=bytearray)
    started_ns: int = 0
    in_flight: bool = False
    bytes_sent: int = 0
    bytes_received: int = 0  # echoed bytes that answered a request
    unexpected_bytes: int = 0  # bytes that arrived with no request in flight
    closed_early: str | None = None  # why the connection ended before the run did


@dataclass
class _Mismatch:
    client: int
    request: int
    first_offset: int
    bytes_differing: int
    expected_head: bytes
    received_head: bytes


class _Load:
    """N closed-loop clients on one epoll: each sends a message, waits for all of its echo,
    checks it, and sends the next."""

    def __init__(self, clients: int, message_bytes: int, emit: Emitter) -> None:
        self.client_count = clients
        self.message_bytes = message_bytes
        self.emit = emit
        self.epoll = select.epoll()
        self.all_clients: list[_Client] = []
        self.open_clients: dict[int, _Client] = {}  # by fd
        self.sending = False
        self.completed = 0
        self.completed_in_load = 0
        self.load_duration_s = 0.0
        self.window_ns: list[int] = []
        self.latencies = SortedRuns()
        self.mismatches: list[_Mismatch] = []
        self.mismatched_bytes = 0
        self.mismatched_requests = 0
        self.unexpected_bytes = 0
        self.errors: Counter[str] = Counter()

    def connect(self, port: int) -> None:
        # Blocking connects, before the clock starts: on loopback they complete as soon as the
        # kernel queues them on the listener, whether or not the server has accepted yet.
        for index in range(self.client_count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as on the server
            client = _Client(index, sock)
            self.all_clients.append(client)
            self.open_clients[sock.fileno()] = client
            self.epoll.register(sock.fileno(), client.interest)

    def drive(self, duration_s: float, interval_ns: int) -> None:
        self.sending = True
        start_ns = time.perf_counter_ns()
        end_ns = start_ns + int(duration_s * 1e9)
        for fd, client in list(self.open_clients.items()):
            self._start_request(fd, client, start_ns)
        next_sample_ns = start_ns + interval_ns
        last_sample_ns = start_ns
        while True:
            now_ns = time.perf_counter_ns()
            if now_ns >= next_sample_ns:
                self._sample(now_ns - start_ns, now_ns - last_sample_ns, duration_s)
                last_sample_ns = now_ns
                # Keep the cadence; after a stall, skip the ticks already missed.
                while next_sample_ns <= now_ns:
                    next_sample_ns += interval_ns
            if now_ns >= end_ns or not self.open_clients:
                break
            self._poll(min(next_sample_ns, end_ns) - now_ns)
        self.load_duration_s = (time.perf_counter_ns() - start_ns) / 1e9
        self.completed_in_load = self.completed
        self.sending = False

    def drain(self, timeout_s: float) -> None:
        """Let the requests in flight finish (no new ones start), up to ``timeout_s``."""
        deadline_ns = time.perf_counter_ns() + int(timeout_s * 1e9)
        while any(client.in_flight for client in self.open_clients.values()):
            remaining_ns = deadline_ns - time.perf_counter_ns()
            if remaining_ns <= 0:
                break
            self._poll(remaining_ns)
        self.latencies.add(self.window_ns)
        self.window_ns = []

    def close(self) -> None:
        for fd in list(self.open_clients):
            self._drop(fd, reason=None)
        self.epoll.close()

    def _poll(self, timeout_ns: int) -> None:
        for fd, events in self.epoll.poll(max(0.0, timeout_ns / 1e9)):
            client = self.open_clients.get(fd)
            if client is None:  # dropped earlier in this batch
                continue
            try:
                if events & select.EPOLLOUT:
                    self._send(fd, client)
                if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    self._receive(fd, client)
            except OSError as exc:  # ECONNRESET, EPIPE: this connection is over
                self.errors[errno_name(exc)] += 1
                self._drop(fd, reason=f"{type(exc).__name__}: {exc}")

    def _start_request(self, fd: int, client: _Client, now_ns: int) -> None:
        client.expected = _message(client.index, client.request, self.message_bytes)
        client.unsent = memoryview(client.expected)
        client.received.clear()
        client.started_ns = now_ns
        client.in_flight = True
        self._send(fd, client)

    def _send(self, fd: int, client: _Client) -> None:
        if client.unsent:
            try:
                sent = client.sock.send(client.unsent)
            except BlockingIOError:
                sent = 0
            client.bytes_sent += sent
            client.unsent = client.unsent[sent:]
        # EPOLLOUT only while part of the message is unsent (level-triggered, see the server);
        # epoll_ctl only when that changes, so a request costs send + epoll_wait + recv.
        interest = select.EPOLLIN | (select.EPOLLOUT if client.unsent else 0)
        if interest != client.interest:
            self.epoll.modify(fd, interest)
            client.interest = interest

    def _receive(self, fd: int, client: _Client) -> None:
        # In a request, never read past its message: further bytes would belong to no request.
        want_bytes = len(client.expected) - len(client.received)
        try:
            data = client.sock.recv(want_bytes if client.in_flight else RECV_CHUNK_BYTES)
        except BlockingIOError:
            return
        if not data:
            during = f" during request {client.request}" if client.in_flight else ""
            self._drop(fd, reason=f"the server closed the connection{during}")
            return
        if not client.in_flight:
            # Nothing is owed to this client: whatever arrives is extra.
            self.unexpected_bytes += len(data)
            client.unexpected_bytes += len(data)
            return
        client.bytes_received += len(data)
        client.received += data
        if len(client.received) < len(client.expected):
            return
        now_ns = time.perf_counter_ns()
        if client.received != client.expected:
            self._record_mismatch(client)
        self.window_ns.append(now_ns - client.started_ns)
        self.completed += 1
        client.in_flight = False
        client.request += 1
        if self.sending:
            self._start_request(fd, client, now_ns)

    def _record_mismatch(self, client: _Client) -> None:
        pairs = zip(client.expected, client.received, strict=True)
        differing = [offset for offset, (want, got) in enumerate(pairs) if want != got]
        self.mismatched_bytes += len(differing)
        self.mismatched_requests += 1
        if len(self.mismatches) < MISMATCH_REPORT_MAX:
            first = differing[0]
            self.mismatches.append(
                _Mismatch(
                    client=client.index,
                    request=client.request,
                    first_offset=first,
                    bytes_differing=len(differing),
                    expected_head=client.expected[first : first + 16],
                    received_head=bytes(client.received[first : first + 16]),
                )
            )

    def _drop(self, fd: int, reason: str | None) -> None:
        client = self.open_clients.pop(fd)
        self.epoll.unregister(fd)
        client.sock.close()
        client.closed_early = reason

    def _sample(self, elapsed_ns: int, window_ns: int, duration_s: float) -> None:
        count = len(self.window_ns)
        elapsed_s = round(elapsed_ns / 1e9, 3)
        requests_per_s = count / (window_ns / 1e9)
        self.emit.sample("requests_per_s", elapsed_s, round(requests_per_s, 1))
        if count:
            window = sorted(self.window_ns)
            self.emit.sample("latency_p50_us", elapsed_s, percentile(window, 0.5) / 1e3)
            # A window of fewer than 100 requests has no p99 but its maximum: leave a gap.
            if supports(count, 0.99):
                self.emit.sample("latency_p99_us", elapsed_s, percentile(window, 0.99) / 1e3)
            self.latencies.add(window)
            self.window_ns = []
        self.emit.progress(
            elapsed_ns / 1e9 / duration_s,
            f"{elapsed_s:.2f}/{duration_s:g} s, {requests_per_s:,.0f} requests/s",
        )


# --- the report -----------------------------------------------------------------------------


def _report(load: _Load, server: dict[str, Any] | None, trigger_mode: str, emit: Emitter) -> None:
    clients = load.all_clients
    sent_bytes = sum(client.bytes_sent for client in clients)
    received_bytes = sum(client.bytes_received for client in clients)
    lost = [client for client in clients if client.bytes_sent > client.bytes_received]
    lost_bytes = sum(client.bytes_sent - client.bytes_received for client in lost)
    server_errors = Counter((server or {}).get("errors", {}))
    errors = load.errors + Counter({f"{name} (server)": n for name, n in server_errors.items()})

    rows = [
        row(
            "requests completed",
            load.completed,
            "requests",
            f"closed loop, one request in flight per connection; "
            f"{load.completed - load.completed_in_load} finished while draining",
        ),
        row(
            "requests/s",
            round(load.completed_in_load / load.load_duration_s, 1),
            "requests/s",
            f"requests completed during the {load.load_duration_s:.2f} s of load",
        ),
        *_latency_rows(load.latencies),
        row("bytes sent", sent_bytes, "bytes", "client side, all connections"),
        row("bytes echoed back", received_bytes, "bytes", "received by the clients"),
        row(
            "bytes echoed (server)",
            server["bytes_echoed"] if server else None,
            "bytes",
            (
                f"sent by the server; it received {server['bytes_received']:,}"
                if server
                else "the server's counters never arrived"
            ),
        ),
        row(
            "mismatched bytes",
            load.mismatched_bytes,
            "bytes",
            "echoed bytes differing from what was sent, checked byte for byte"
            + (
                f"; plus {load.unexpected_bytes:,} bytes nobody asked for"
                if load.unexpected_bytes
                else ""
            ),
        ),
        row("lost bytes", lost_bytes, "bytes", "sent but never echoed back (sent − echoed back)"),
        row(
            "errors",
            sum(errors.values()),
            "errors",
            ", ".join(f"{name} ×{n}" for name, n in sorted(errors.items())) or "none",
        ),
        row(
            "connections",
            len(clients),
            "connections",
            (
                f"the server accepted {server['accepted']}; {server['open_at_stop']} still open "
                "when it stopped"
                if server
                else "the server's counters never arrived"
            ),
        ),
        *_server_call_rows(server, load.completed, trigger_mode),
    ]
    emit.result(rows)

    for problem in _problems(load, server, lost, lost_bytes, sent_bytes, received_bytes):
        emit.error(problem)


def _server_call_rows(
    server: dict[str, Any] | None, requests: int, trigger_mode: str
) -> list[dict[str, Any]]:
    """The server's syscalls per request: where the two trigger modes differ."""
    calls = Counter((server or {}).get("calls", {}))
    how = {
        "level": "level-triggered: one recv per readiness event, epoll_ctl to add and drop "
        "EPOLLOUT while an echo is pending",
        "edge": "edge-triggered: registered once for EPOLLIN|EPOLLOUT|EPOLLET, never modified; "
        "each event read and written until EAGAIN, so every wake-up ends in a failed recv",
    }[trigger_mode]
    rows = [row("trigger mode", trigger_mode, "", how)]
    if server is None or not requests:
        return rows
    for name in ("epoll_wait", "recv", "recv EAGAIN", "send", "send EAGAIN", "epoll_ctl"):
        rows.append(
            row(
                f"server {name} per request",
                round(calls[name] / requests, 3),
                "calls/request",
                f"{calls[name]:,} in all, counted by the server ({trigger_mode}-triggered)",
            )
        )
    return rows


def _latency_rows(latencies: SortedRuns) -> list[dict[str, Any]]:
    """One row for the one distribution: its median, spread, p99 and max are columns of it,
    not rows of their own."""
    note = "from the first byte sent to the last byte echoed back, per request"
    if not latencies.count:
        return [row("latency per request", None, "µs", "no request completed")]
    dist = latencies.distribution().scaled(1 / 1e3)
    return [dist_row("latency per request", dist, "µs", note, digits=3)]


def _problems(
    load: _Load,
    server: dict[str, Any] | None,
    lost: list[_Client],
    lost_bytes: int,
    sent_bytes: int,
    received_bytes: int,
) -> list[str]:
    """Every way the run failed to get each byte back, said exactly."""
    problems = []
    if lost:
        parts = [
            f"client {client.index}: {_bytes(client.bytes_sent - client.bytes_received)} of "
            f"request {client.request}"
            + (f" ({client.closed_early})" if client.closed_early else "")
            for client in lost
        ]
        problems.append(f"{_bytes(lost_bytes)} sent never came back: " + "; ".join(parts))
    if load.mismatched_bytes:
        parts = [
            f"client {m.client} request {m.request}: {_bytes(m.bytes_differing)} wrong from "
            f"offset {m.first_offset} (expected {m.expected_head!r}, got {m.received_head!r})"
            for m in load.mismatches
        ]
        unlisted = load.mismatched_requests - len(load.mismatches)
        problems.append(
            f"echoed bytes differ from what was sent: {_bytes(load.mismatched_bytes)} in "
            f"{load.mismatched_requests:,} request{'' if load.mismatched_requests == 1 else 's'}: "
            + "; ".join(parts)
            + (f"; and {unlisted:,} more requests" if unlisted else "")
        )
    if load.unexpected_bytes:
        parts = [
            f"client {client.index}: {_bytes(client.unexpected_bytes)}"
            for client in load.all_clients
            if client.unexpected_bytes
        ]
        problems.append(
            f"{_bytes(load.unexpected_bytes)} arrived with no request outstanding: "
            + "; ".join(parts)
        )
    dropped = [client for client in load.all_clients if client.closed_early and client not in lost]
    if dropped:
        problems.append(
            "connections ended early: "
            + "; ".join(f"client {client.index}: {client.closed_early}" for client in dropped)
        )
    if server is None:
        problems.append("the echo server's counters never arrived, so its side is unchecked")
    elif server["bytes_received"] != sent_bytes or server["bytes_echoed"] != (
        received_bytes + load.unexpected_bytes
    ):
        problems.append(
            f"the two sides disagree: clients sent {sent_bytes:,} bytes and got "
            f"{received_bytes + load.unexpected_bytes:,} back; the server received "
            f"{server['bytes_received']:,} and echoed {server['bytes_echoed']:,}"
        )
    return problems


def _bytes(count: int) -> str:
    return f"{count:,} byte" + ("" if count == 1 else "s")
