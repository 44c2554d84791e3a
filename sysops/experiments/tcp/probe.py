"""TCP from the syscalls up: connect latency, request/response round trips and bulk throughput
between two processes on the sandbox's own loopback.

Sandbox side: standard library, sysops.worker and sysops.native only. A forked server child
(toolkit.harness.Child) makes its own socket, bind, listen and accept4, so a trace shows the
server's calls and the client's under their own pids. Each layer runs at both ends: Python
socket calls in a Python loop, or the C loops of ``sysops/native/_net.c`` with the GIL released.
The client works in slices of about 100 ms: each slice is a point of the live chart, and the run
stops at ``count`` operations or ``duration_s``, whichever comes first.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from array import array
from collections.abc import Callable, Mapping
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit import hostfacts, netns, params, sockets
from sysops.worker.toolkit.harness import Child, ChildContext
from sysops.worker.toolkit.rows import dist_row, facts_rows, row, with_ratios
from sysops.worker.toolkit.stats import Distribution, SortedRuns
from sysops.worker.toolkit.timing import gc_paused

MEASUREMENTS = ("connect", "rtt", "throughput")
LAYERS = ("python", "native")
LAYER_LABELS = {"python": "Python socket", "native": "native C loop"}
SIZE_BYTES_MAX = 1 << 20
COUNT_MAX = 1_000_000
CONNECT_COUNT_MAX = 100_000
DURATION_S_MIN, DURATION_S_MAX = 0.05, 60.0
LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
SLICE_NS = 100_000_000  # one chart point per ~100 ms of work
FIRST_SLICE_OPS = 16
SINK_BUFFER_BYTES_MIN = 65_536  # the receiver reads in big chunks: the sender is measured
SERVER_STOP_TIMEOUT_S = 10.0
SYSCTLS = (
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.somaxconn",
    "net.ipv4.tcp_tw_reuse",
)
SECCOMP_NOTE = "Inside the sandbox every syscall also passes its seccomp filter (~10–60 ns each)."


def run(params_: Mapping[str, Any], emit: Emitter) -> None:
    measurement = params.choice(params_, "measurement", MEASUREMENTS)
    size = params.bounded_int(params_, "message_bytes", 1, SIZE_BYTES_MAX)
    count_max = CONNECT_COUNT_MAX if measurement == "connect" else COUNT_MAX
    count = params.bounded_int(params_, "count", 1, count_max)
    duration_s = params.bounded_float(params_, "duration_s", DURATION_S_MIN, DURATION_S_MAX)
    layers = params.subset(params_, "layers", LAYERS)
    if "native" in layers:
        from sysops.native import load

        net = load("_net")
    else:
        net = None
    measure = {"connect": _connect_layer, "rtt": _rtt_layer, "throughput": _throughput_layer}
    rows: list[dict[str, Any]] = []
    counters_before = netns.interface_counters()
    for layer in layers:
        emit.phase(f"{measurement} · {LAYER_LABELS[layer]}")
        rows += measure[measurement](layer, net, size, count, duration_s, emit)
    rows = with_ratios(rows) + netns.namespace_rows(
        counters_before,
        netns.interface_counters(),
        during="the measurement",
        note="from /proc/net/dev: every segment, data or ACK, of both ends on lo",
    )
    facts = {**hostfacts.sysctls(*SYSCTLS), "kernel": hostfacts.kernel_release()}
    emit.result(rows + facts_rows(facts, "host fact the figures depend on"))


# --- the server child ---------------------------------------------------------------------------


def _server_main(measurement: str, size: int, net: Any) -> Callable[[ChildContext], dict]:
    def main(ctx: ChildContext) -> dict:
        listener = sockets.listener(LISTEN_BACKLOG)
        ctx.report({"port": listener.getsockname()[1], "pid": os.getpid()})
        if measurement == "connect":
            if net is not None:
                accepted, calls = net.accept_loop(listener.fileno(), ctx.control_fd)
            else:
                accepted, calls = _py_accept_loop(listener, ctx.control_fd)
            listener.close()
            return {"accepted": accepted, "syscalls": calls}
        conn, _ = listener.accept()
        listener.close()
        if measurement == "rtt":
            if net is not None:
                messages, recv_calls, send_calls = net.echo_loop(conn.fileno(), size)
            else:
                messages, recv_calls, send_calls = _py_echo_loop(conn, size)
            result = {"messages": messages, "recv_calls": recv_calls, "send_calls": send_calls}
        else:
            buffer_bytes = max(size, SINK_BUFFER_BYTES_MIN)
            if net is not None:
                received, recv_calls = net.sink_loop(conn.fileno(), buffer_bytes)
            else:
                received, recv_calls = sockets.drain(conn, buffer_bytes)
            result = {"bytes": received, "recv_calls": recv_calls}
        # The client shut down its sending side first; this FIN tells it everything arrived.
        conn.shutdown(socket.SHUT_WR)
        conn.close()
        return result

    return main


def _py_accept_loop(listener: socket.socket, control_fd: int) -> tuple[int, int]:
    poller = select.poll()
    poller.register(listener, select.POLLIN)
    poller.register(control_fd, select.POLLIN)
    accepted = calls = 0
    while True:
        ready = dict(poller.poll())
        calls += 1
        if ready.get(listener.fileno()):
            conn, _ = listener.accept()
            conn.close()
            accepted += 1
            calls += 2
            continue  # drain the queue before looking at the control pipe
        if ready.get(control_fd):
            return accepted, calls


def _py_echo_loop(conn: socket.socket, size: int) -> tuple[int, int, int]:
    view = memoryview(bytearray(size))
    messages = recv_calls = send_calls = 0
    while True:
        calls = sockets.recv_exact(conn, view)
        if not calls:
            return messages, recv_calls + 1, send_calls
        recv_calls += calls
        send_calls += sockets.send_all(conn, view)
        messages += 1


def _start_server(measurement: str, layer: str, size: int, net: Any, emit: Emitter) -> Child:
    server = Child.start(
        _server_main(measurement, size, net if layer == "native" else None),
        name=f"{layer} server",
    )
    emit.log(f"{layer} server pid {server.pid} listening on 127.0.0.1:{server.ready['port']}")
    return server


def _stop_server(server: Child, emit: Emitter) -> dict[str, Any]:
    final = server.stop(SERVER_STOP_TIMEOUT_S) or {}
    for note in server.notes:
        emit.log(note, level="warning")
    if "error" in final:
        raise RuntimeError(f"the {server.name} failed: {final['error']}")
    return final


# --- slices: count or duration, one chart point each --------------------------------------------


def _sliced(
    run_slice: Callable[[int], list[int]],
    count: int,
    duration_s: float,
    emit: Emitter,
    series: str,
) -> tuple[SortedRuns, float]:
    """Calls ``run_slice(n)`` (n operations, their ns each) until ``count`` operations or
    ``duration_s``; each slice sized to take about SLICE_NS and charted as its median and max
    in µs against elapsed seconds. Returns every value and the elapsed seconds."""
    values = SortedRuns()
    done, ops = 0, FIRST_SLICE_OPS
    start_ns = time.monotonic_ns()
    deadline_ns = start_ns + int(duration_s * 1e9)
    with gc_paused():
        while done < count and time.monotonic_ns() < deadline_ns:
            ops = max(1, min(ops, count - done))
            slice_start_ns = time.monotonic_ns()
            times_ns = run_slice(ops)
            slice_ns = max(1, time.monotonic_ns() - slice_start_ns)
            values.add(times_ns)
            done += len(times_ns)
            dist = Distribution.of(times_ns)
            x = round((time.monotonic_ns() - start_ns) / 1e9, 4)
            emit.sample(f"{series}_median", x, round(dist.median / 1e3, 3))
            emit.sample(f"{series}_max", x, round(dist.max / 1e3, 3))
            emit.progress(min(done / count, x / duration_s), f"{series}: {done:,} done")
            ops = max(1, int(ops * SLICE_NS / slice_ns))
    return values, (time.monotonic_ns() - start_ns) / 1e9


# --- connect --------------------------------------------------------------------------------------


def _connect_layer(
    layer: str, net: Any, size: int, count: int, duration_s: float, emit: Emitter
) -> list[dict[str, Any]]:
    server = _start_server("connect", layer, size, net, emit)
    port = server.ready["port"]
    calls = [0]
    to_fin_ns = SortedRuns()
    try:
        if layer == "native":

            def run_slice(n: int) -> list[int]:
                data, made = net.connect_ns(port, n)
                calls[0] += made
                pairs = array("q", data)
                to_fin_ns.add(pairs[1::2])
                return pairs[0::2].tolist()

        else:

            def run_slice(n: int) -> list[int]:
                handshake_ns, fin_ns, made = _py_connects(port, n)
                calls[0] += made
                to_fin_ns.add(fin_ns)
                return handshake_ns

        values, elapsed_s = _sliced(run_slice, count, duration_s, emit, layer)
    finally:
        server_final = _stop_server(server, emit)
        server.kill_if_running()
    dist = values.distribution().scaled(1e-3)
    label = LAYER_LABELS[layer]
    server_per_conn = server_final.get("syscalls", 0) / max(1, server_final.get("accepted", 0))
    return [
        dist_row(
            f"connect latency · {label}",
            dist,
            "µs",
            "connect() on a non-blocking socket (EINPROGRESS) until poll says writable: the "
            f"three-way handshake on loopback as the client sees it. {SECCOMP_NOTE}",
            layer=layer,
        ),
        dist_row(
            f"connect to the server's FIN · {label}",
            to_fin_ns.distribution().scaled(1e-3),
            "µs",
            "until recv returns 0: the server has woken, accept4ed the connection and closed "
            "it (the server closes first, so TIME_WAIT stays on its side)",
        ),
        row(
            f"connections per second · {label}",
            round(dist.n / elapsed_s, 1),
            "connections/s",
            "one connection at a time, set up and torn down",
        ),
        row(
            f"syscalls per connection (client) · {label}",
            round(calls[0] / dist.n, 2),
            "calls",
            "socket, connect, poll, getsockopt(SO_ERROR), poll, recv (EOF), close",
        ),
        row(
            f"syscalls per connection (server) · {label}",
            round(server_per_conn, 2),
            "calls",
            f"poll, accept4, close; {server_final.get('accepted', 0):,} connections accepted",
        ),
    ]


def _py_connects(port: int, n: int) -> tuple[list[int], list[int], int]:
    address = (sockets.LOOPBACK, port)
    perf_counter_ns = time.perf_counter_ns
    handshake_ns, fin_ns, calls = [], [], 0
    for _ in range(n):
        sock = socket.socket(
            socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        )
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        start_ns = perf_counter_ns()
        err = sock.connect_ex(address)
        calls += 2
        if err == errno.EINPROGRESS:
            poller.poll(sockets.CONNECT_TIMEOUT_MS)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            calls += 2
        handshake_ns.append(perf_counter_ns() - start_ns)
        if not err:
            poller.modify(sock, select.POLLIN)
            poller.poll(sockets.CONNECT_TIMEOUT_MS)
            data = sock.recv(1)
            fin_ns.append(perf_counter_ns() - start_ns)
            calls += 2
        sock.close()
        calls += 1
        if err:
            raise OSError(err, f"connect: {os.strerror(err)}")
        if data:
            raise RuntimeError("the server sent data instead of closing")
    return handshake_ns, fin_ns, calls


# --- request/response round trip ------------------------------------------------------------------


def _rtt_layer(
    layer: str, net: Any, size: int, count: int, duration_s: float, emit: Emitter
) -> list[dict[str, Any]]:
    server = _start_server("rtt", layer, size, net, emit)
    calls = {"send": 0, "recv": 0}
    try:
        sock, _ = sockets.connect(server.ready["port"])
        try:
            if layer == "native":

                def run_slice(n: int) -> list[int]:
                    data, sends, recvs = net.pingpong_ns(sock.fileno(), size, n)
                    calls["send"] += sends
                    calls["recv"] += recvs
                    return array("q", data).tolist()

            else:
                run_slice = _py_pingpong(sock, size, calls)
            values, _ = _sliced(run_slice, count, duration_s, emit, layer)
            sock.shutdown(socket.SHUT_WR)
            sock.recv(1)  # the server's FIN: it has seen our EOF and finished
        finally:
            sock.close()
        server_final = _stop_server(server, emit)
    finally:
        server.kill_if_running()
    dist = values.distribution().scaled(1e-3)
    label = LAYER_LABELS[layer]
    messages = dist.n
    server_calls = server_final.get("recv_calls", 0) + server_final.get("send_calls", 0)
    return [
        dist_row(
            f"round trip, {size:,} B each way · {label}",
            dist,
            "µs",
            "send the request, recv the whole reply: two process wake-ups and two trips through "
            f"the loopback TCP stack. {SECCOMP_NOTE}",
            layer=layer,
        ),
        row(
            f"syscalls per round trip (client) · {label}",
            round((calls["send"] + calls["recv"]) / messages, 3),
            "calls",
            f"{calls['send']:,} send + {calls['recv']:,} recv for {messages:,} round trips; "
            "above 2 when a message needs more than one call",
        ),
        row(
            f"syscalls per round trip (server) · {label}",
            round(server_calls / max(1, server_final.get("messages", 0)), 3),
            "calls",
            f"{server_final.get('recv_calls', 0):,} recv + {server_final.get('send_calls', 0):,}"
            f" send for {server_final.get('messages', 0):,} echoed messages",
        ),
    ]


def _py_pingpong(
    sock: socket.socket, size: int, calls: dict[str, int]
) -> Callable[[int], list[int]]:
    view = memoryview(bytearray(size))
    perf_counter_ns = time.perf_counter_ns
    send_all, recv_exact = sockets.send_all, sockets.recv_exact

    def run_slice(n: int) -> list[int]:
        times_ns = []
        sends = recvs = 0
        for _ in range(n):
            start_ns = perf_counter_ns()
            sends += send_all(sock, view)
            got = recv_exact(sock, view)
            if not got:
                raise ConnectionResetError(errno.ECONNRESET, "the server closed early")
            recvs += got
            times_ns.append(perf_counter_ns() - start_ns)
        calls["send"] += sends
        calls["recv"] += recvs
        return times_ns

    return run_slice


# --- bulk throughput ----------------------------------------------------------------------------


def _throughput_layer(
    layer: str, net: Any, size: int, count: int, duration_s: float, emit: Emitter
) -> list[dict[str, Any]]:
    server = _start_server("throughput", layer, size, net, emit)
    rates_mb_s: list[float] = []
    sent_messages = send_calls = 0
    try:
        sock, _ = sockets.connect(server.ready["port"])
        try:
            start_ns = time.monotonic_ns()
            deadline_ns = start_ns + int(duration_s * 1e9)
            with gc_paused():
                while sent_messages < count and time.monotonic_ns() < deadline_ns:
                    budget_ns = min(SLICE_NS, deadline_ns - time.monotonic_ns())
                    if layer == "native":
                        messages, made, slice_ns = net.bulk_send(
                            sock.fileno(), size, count - sent_messages, max(1, budget_ns)
                        )
                    else:
                        messages, made, slice_ns = _py_bulk_send(
                            sock, size, count - sent_messages, budget_ns
                        )
                    sent_messages += messages
                    send_calls += made
                    rate = messages * size / max(1, slice_ns) * 1e3  # bytes/ns → MB/s
                    rates_mb_s.append(rate)
                    x = round((time.monotonic_ns() - start_ns) / 1e9, 4)
                    emit.sample(layer, x, round(rate, 2))
                    emit.progress(
                        min(sent_messages / count, x / duration_s),
                        f"{layer}: {sent_messages * size / 1e6:,.1f} MB sent",
                    )
            sock.shutdown(socket.SHUT_WR)
            # The server's FIN comes once it has read everything: the elapsed time includes
            # the bytes still queued in the socket buffers when the last send returned.
            sock.recv(1)
            elapsed_ns = time.monotonic_ns() - start_ns
        finally:
            sock.close()
        server_final = _stop_server(server, emit)
    finally:
        server.kill_if_running()
    received = server_final.get("bytes", 0)
    if received != sent_messages * size:
        raise RuntimeError(f"sent {sent_messages * size:,} bytes but the server read {received:,}")
    label = LAYER_LABELS[layer]
    mb_s = received / elapsed_ns * 1e3
    buffer_bytes = max(size, SINK_BUFFER_BYTES_MIN)
    return [
        row(
            f"throughput, {size:,} B messages · {label}",
            round(mb_s, 2),
            "MB/s",
            f"{received:,} bytes in {elapsed_ns / 1e9:.3f} s, until the receiver had read them "
            f"all (MB = 10^6 bytes). {SECCOMP_NOTE}",
            layer=layer,
        ),
        row(
            f"throughput in Gbit/s · {label}",
            round(received * 8 / elapsed_ns, 3),
            "Gbit/s",
            "the same transfer in bits",
        ),
        dist_row(
            f"sender rate per ~100 ms slice · {label}",
            rates_mb_s,
            "MB/s",
            "bytes handed to send() per slice: the live chart's points",
        ),
        row(
            f"syscalls per message (sender) · {label}",
            round(send_calls / max(1, sent_messages), 3),
            "calls",
            f"{send_calls:,} send calls for {sent_messages:,} messages of {size:,} B",
        ),
        row(
            f"recv calls per MB (receiver) · {label}",
            round(server_final.get("recv_calls", 0) / max(1e-9, received / 1e6), 2),
            "calls/MB",
            f"the receiver reads up to {buffer_bytes:,} B a call",
        ),
    ]


def _py_bulk_send(
    sock: socket.socket, size: int, max_messages: int, budget_ns: int
) -> tuple[int, int, int]:
    view = memoryview(bytearray(size))
    monotonic_ns, send_all = time.monotonic_ns, sockets.send_all
    start_ns = monotonic_ns()
    messages = calls = 0
    while messages < max_messages:
        calls += send_all(sock, view)
        messages += 1
        if monotonic_ns() - start_ns >= budget_ns:
            break
    return messages, calls, monotonic_ns() - start_ns
