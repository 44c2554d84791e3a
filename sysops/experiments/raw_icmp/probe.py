"""Raw ICMP: echo requests on a raw socket to the sandbox's own loopback, every reply's IP and
ICMP headers decoded by hand (sysops.worker.toolkit.inet) and their checksums verified.

Sandbox side, standard library and the probe toolkit only. The worker keeps CAP_NET_RAW in the
sandbox (inside uid 0, mapped to an unprivileged host uid, in its own network namespace); a
forked child drops it with capset(2) to show the same socket call refused.

A raw ICMP socket receives a copy of every ICMP packet its namespace receives. On loopback that
includes our own echo requests: the request goes out on lo, comes back in on lo, is delivered
to every raw ICMP socket and then answered by the kernel. Each request copy is counted (and its
kernel receive stamp kept: reply stamp minus request stamp is the kernel's turnaround), never
mistaken for a reply.
"""

from __future__ import annotations

import math
import os
import select
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sysops.worker.emit import Emitter
from sysops.worker.toolkit import caps, netns
from sysops.worker.toolkit.harness import Child, ChildContext
from sysops.worker.toolkit.hostfacts import kernel_release, sysctl
from sysops.worker.toolkit.inet import (
    CHECKSUM_BAD,
    CHECKSUM_OK,
    CHECKSUM_OK_ON_THE_WIRE,
    ICMP_ECHO_HEADER_BYTES,
    ICMP_ECHO_REPLY,
    ICMP_ECHO_REQUEST,
    IPPROTO_ICMP,
    IcmpPacket,
    PacketError,
    build_icmp_echo,
    build_ipv4,
    ip_checksum_verdict,
    parse_icmp_packet,
    record_route_option,
)
from sysops.worker.toolkit.params import bounded_int, choice, flag
from sysops.worker.toolkit.rows import dist_row, errno_row, row
from sysops.worker.toolkit.timing import SampleFlusher, gc_paused

COUNT_MAX = 1_000
PAYLOAD_BYTES_MAX = 1_400
INTERVAL_MS_MAX = 1_000
TTL_MIN, TTL_MAX = 1, 255
IP_OPTIONS = ("none", "record_route")
RECORD_ROUTE_SLOTS = 9  # the most that fit in 40 bytes of options: IHL 15
LOOPBACK = "127.0.0.1"
REPLY_TIMEOUT_S = 1.0  # a reply later than this counts as lost
RUN_TIME_MAX_S = 90.0  # beyond the form's bound (count × interval ≤ 60 s): stop sending
RECV_BUFFER_BYTES = 65_535
UNDECODABLE_SHOWN = 3  # undecodable packets quoted in the result; the rest are counted
# <asm-generic/socket.h>: SO_TIMESTAMPNS (the "old" 64-bit timespec variant); Python's socket
# module does not name it. Its control message carries a struct timespec.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("@qq")
PAYLOAD_PATTERN = bytes(range(256)) * (PAYLOAD_BYTES_MAX // 256 + 1)
HDRINCL_FIELDS = ("total_length", "identification", "header_checksum", "ttl", "source")
TABLE_COLUMNS = (
    "seq",
    "round trip µs",
    "kernel µs",
    "TTL",
    "IP id",
    "IP bytes",
    "IP checksum",
    "ICMP checksum",
)
US_PER_NS = 1e-3
SECCOMP_NOTE = "Measured inside the sandbox: each syscall also runs its seccomp filter (~10–60 ns)."


@dataclass
class Echo:
    """One sequence number: what was sent and what came back."""

    seq: int
    icmp: bytes  # the ICMP message we built
    sent: bytes  # what we handed to sendto (with IP_HDRINCL, our own IP header included)
    send_ns: int = 0  # perf_counter, for the round trip Python sees
    send_realtime_ns: int = 0  # CLOCK_REALTIME, the clock of the kernel's receive stamps
    request: bytes | None = None  # our request as it came back in on lo
    request_stamp_ns: int | None = None  # kernel receive stamp (SO_TIMESTAMPNS, realtime)
    reply: bytes | None = None
    reply_stamp_ns: int | None = None
    rtt_ns: int | None = None
    decoded: IcmpPacket | None = None


@dataclass
class Capture:
    echoes: list[Echo]
    identifier: int
    requests_seen: int = 0
    foreign: int = 0  # ICMP of another identifier or type, and undecodable packets
    undecodable: list[str] = field(default_factory=list)
    stopped_early: str = ""


def run(params: Mapping[str, Any], emit: Emitter) -> None:
    count, payload_bytes, interval_ms, ttl, hdrincl, options = _checked(params)
    if not caps.has("CAP_NET_RAW"):
        raise PermissionError(
            "this process lacks CAP_NET_RAW, so socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) would "
            "fail with EPERM: run it through the sandbox, which keeps that capability"
        )
    emit.phase("without CAP_NET_RAW")
    refused = _without_net_raw()
    emit.phase("echo")
    lo_before = netns.interface_counters()
    capture = _ping(count, payload_bytes, interval_ms, ttl, hdrincl, options, emit)
    lo_after = netns.interface_counters()
    emit.result(
        _echo_rows(capture, ttl, hdrincl)
        + _capability_rows(refused)
        + _namespace_rows(lo_before, lo_after)
    )


def _checked(params: Mapping[str, Any]) -> tuple[int, int, int, int, bool, str]:
    return (
        bounded_int(params, "count", 1, COUNT_MAX),
        bounded_int(params, "payload_bytes", 0, PAYLOAD_BYTES_MAX),
        bounded_int(params, "interval_ms", 0, INTERVAL_MS_MAX),
        bounded_int(params, "ttl", TTL_MIN, TTL_MAX),
        flag(params, "hdrincl"),
        choice(params, "ip_options", IP_OPTIONS, "none"),
    )


def _ping(
    count: int,
    payload_bytes: int,
    interval_ms: int,
    ttl: int,
    hdrincl: bool,
    options: str,
    emit: Emitter,
) -> Capture:
    option_bytes = record_route_option(RECORD_ROUTE_SLOTS) if options == "record_route" else b""
    # As ping does: the low 16 bits of the pid tell our echoes from anyone else's.
    identifier = os.getpid() & 0xFFFF
    capture = Capture(echoes=[], identifier=identifier)
    flusher = SampleFlusher(emit)
    deadline_ns = time.monotonic_ns() + int(RUN_TIME_MAX_S * 1e9)
    with _raw_icmp_socket(ttl, hdrincl, option_bytes) as sock, gc_paused():
        for seq in range(1, count + 1):
            if time.monotonic_ns() > deadline_ns:
                capture.stopped_early = f"stopped after {seq - 1} echoes: {RUN_TIME_MAX_S:g} s"
                break
            icmp = build_icmp_echo(identifier, seq, PAYLOAD_PATTERN[:payload_bytes])
            if hdrincl:
                # The identification is ours to choose too; the sequence number is easy to spot.
                header = build_ipv4(
                    source=LOOPBACK,
                    destination=LOOPBACK,
                    protocol=IPPROTO_ICMP,
                    payload_bytes=len(icmp),
                    ttl=ttl,
                    identification=seq,
                    options=option_bytes,
                )
                echo = Echo(seq=seq, icmp=icmp, sent=header + icmp)
            else:
                echo = Echo(seq=seq, icmp=icmp, sent=icmp)
            capture.echoes.append(echo)
            echo.send_realtime_ns = time.time_ns()
            echo.send_ns = time.perf_counter_ns()
            sock.sendto(echo.sent, (LOOPBACK, 0))
            _receive_until_reply(sock, capture, echo)
            for timing in TIMINGS:
                value_ns = timing.measure(echo)
                if value_ns is not None:
                    flusher.add(timing.series, seq, round(value_ns * US_PER_NS, 3))
            flusher.maybe_flush(seq / count, f"echo {seq}/{count}", force=seq == count)
            pause_ns = echo.send_ns + interval_ms * 1_000_000 - time.perf_counter_ns()
            if pause_ns > 0:
                time.sleep(pause_ns / 1e9)
    return capture


def _raw_icmp_socket(ttl: int, hdrincl: bool, option_bytes: bytes) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        # Kernel receive stamps on every packet: the turnaround without Python in it.
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if hdrincl:
            # We write the IP header; the kernel still fills in the total length and the
            # checksum (raw(7)), so the copy that comes back shows what it changed.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            if option_bytes:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, option_bytes)
    except BaseException:
        sock.close()
        raise
    return sock


def _receive_until_reply(sock: socket.socket, capture: Capture, echo: Echo) -> None:
    """Read the socket until ``echo``'s reply arrives or REPLY_TIMEOUT_S passes, sorting
    everything else that arrives (our own request on lo, strays)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    deadline_ns = echo.send_ns + int(REPLY_TIMEOUT_S * 1e9)
    while echo.reply is None:
        remaining_ns = deadline_ns - time.perf_counter_ns()
        if remaining_ns <= 0:
            return
        if poller.poll(math.ceil(remaining_ns / 1e6)):
            for data, received_ns, ancillary in _drain(sock):
                _sort(capture, data, received_ns, _stamp_ns(ancillary))


def _drain(sock: socket.socket) -> list[tuple[bytes, int, list[tuple[int, int, bytes]]]]:
    """Everything queued on the socket, each stamped as it is read: nothing is decoded in
    between, so a reply's round trip does not include decoding the request copy before it."""
    batch = []
    while True:
        try:
            data, ancillary, _, _ = sock.recvmsg(
                RECV_BUFFER_BYTES, socket.CMSG_SPACE(TIMESPEC.size), socket.MSG_DONTWAIT
            )
        except BlockingIOError:
            return batch
        batch.append((data, time.perf_counter_ns(), ancillary))


def _sort(capture: Capture, data: bytes, received_ns: int, stamp_ns: int | None) -> None:
    """Our request's copy, our reply, or someone else's ICMP."""
    try:
        packet = parse_icmp_packet(data)
    except PacketError as exc:
        capture.foreign += 1
        if len(capture.undecodable) < UNDECODABLE_SHOWN:
            capture.undecodable.append(f"{exc}: {data[:32].hex()}")
        return
    icmp = packet.icmp
    if icmp.identifier != capture.identifier or not 1 <= icmp.sequence <= len(capture.echoes):
        capture.foreign += 1
        return
    owner = capture.echoes[icmp.sequence - 1]
    if icmp.type == ICMP_ECHO_REQUEST:
        capture.requests_seen += 1
        owner.request, owner.request_stamp_ns = data, stamp_ns
    elif icmp.type == ICMP_ECHO_REPLY and owner.reply is None:
        owner.reply, owner.reply_stamp_ns, owner.decoded = data, stamp_ns, packet
        owner.rtt_ns = received_ns - owner.send_ns
    else:
        capture.foreign += 1


def _stamp_ns(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            return seconds * 1_000_000_000 + nanoseconds
    return None


def _stamped_ns(echo: Echo) -> int | None:
    """As ping reports a round trip: our clock just before sendto to the kernel's receive stamp
    of the reply (ping -U aside), so the wake-up of the reading process is not in it."""
    if echo.reply_stamp_ns is None:
        return None
    return echo.reply_stamp_ns - echo.send_realtime_ns


def _kernel_ns(echo: Echo) -> int | None:
    if echo.request_stamp_ns is None or echo.reply_stamp_ns is None:
        return None
    return echo.reply_stamp_ns - echo.request_stamp_ns


def _rtt_ns(echo: Echo) -> int | None:
    return echo.rtt_ns


@dataclass(frozen=True)
class Timing:
    """One way of timing an echo: a chart series and a result row."""

    layer: str
    series: str
    metric: str
    measure: Callable[[Echo], int | None]
    note: str


# Nested intervals of the same echoes, widest first: each leaves out more than the one before.
TIMINGS = (
    Timing(
        "python",
        "rtt_us",
        "round trip, sendto → reply read (Python, raw socket)",
        _rtt_ns,
        "perf_counter just before sendto to just after the recvmsg that returned the reply: the "
        "trip through lo and the kernel's echo code, a poll, reading our request's copy and "
        "then the reply, and Python around those calls. After an idle interval the process is "
        f"woken cold and this grows; the two rows below leave that out. {SECCOMP_NOTE}",
    ),
    Timing(
        "stamped",
        "stamped_us",
        "round trip as ping reports it, sendto → reply stamped by the kernel",
        _stamped_ns,
        "Our clock just before sendto to the kernel's receive stamp of the reply "
        "(SO_TIMESTAMPNS), as iputils ping computes it: the gap to the row above is the "
        "reading process being woken and returning to Python.",
    ),
    Timing(
        "kernel",
        "kernel_us",
        "kernel turnaround, request in → reply in (SO_TIMESTAMPNS)",
        _kernel_ns,
        "The kernel's receive stamps of our request's copy and of the reply on the raw socket: "
        "icmp_echo building the reply and sending it through lo, no Python.",
    ),
)


def _without_net_raw() -> dict[str, Any]:
    """The same socket calls in a forked child that dropped CAP_NET_RAW (uid 0 kept)."""
    child = Child.start(_child_without_net_raw, name="child without CAP_NET_RAW")
    try:
        child.stop()
    finally:
        child.kill_if_running()
    return {**child.ready, "with_cap_dgram": _socket_errno(socket.SOCK_DGRAM)}


def _child_without_net_raw(ctx: ChildContext) -> None:
    caps.drop("CAP_NET_RAW")
    ctx.report(
        {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "effective": len(caps.names(caps.capability_sets()["CapEff"])),
            "raw": _socket_errno(socket.SOCK_RAW),
            "dgram": _socket_errno(socket.SOCK_DGRAM),
        }
    )


def _socket_errno(kind: int) -> int:
    """0 when socket(AF_INET, kind, IPPROTO_ICMP) opens, else its errno."""
    try:
        socket.socket(socket.AF_INET, kind, socket.IPPROTO_ICMP).close()
    except OSError as exc:
        return exc.errno or -1
    return 0


def _echo_rows(capture: Capture, ttl: int, hdrincl: bool) -> list[dict[str, Any]]:
    echoes = capture.echoes
    replied = [e for e in echoes if e.decoded is not None]
    sent = len(echoes)
    lost = sent - len(replied)
    checksums = [_ip_checksum(e) for e in replied]
    rows = []
    for timing in TIMINGS:
        values_us = [v * US_PER_NS for v in map(timing.measure, replied) if v is not None]
        if values_us:
            rows.append(
                dist_row(timing.metric, values_us, "µs", timing.note, layer=timing.layer, digits=3)
            )
    rows += [
        row("echo requests sent", sent, "packets", capture.stopped_early),
        row("echo replies received", len(replied), "packets", "type 0, our identifier"),
        row(
            "loss",
            round(100 * lost / sent, 2) if sent else 0,
            "%",
            f"{lost} without a reply within {REPLY_TIMEOUT_S:g} s",
        ),
        row(
            "replies whose IP header checksum verifies",
            checksums.count(CHECKSUM_OK),
            f"of {len(replied)}",
            "as received: RFC 1071 over the IHL × 4 header bytes, checksum included, sums to 0",
        ),
        row(
            "replies whose ICMP checksum verifies",
            sum(e.decoded.icmp.checksum_ok for e in replied),
            f"of {len(replied)}",
            "over the whole ICMP message, header and payload",
        ),
        row(
            "replies with our payload intact",
            sum(e.decoded.icmp.payload == e.icmp[ICMP_ECHO_HEADER_BYTES:] for e in replied),
            f"of {len(replied)}",
            "echo replies return the request's data byte for byte (RFC 792)",
        ),
        row(
            "our own echo requests seen on the raw socket",
            capture.requests_seen,
            "packets",
            "A raw ICMP socket gets a copy of every ICMP packet its namespace receives: on "
            "loopback our requests come back in on lo before the kernel answers them. They are "
            "told apart by type (8, not 0); ping filters them with ICMP_FILTER.",
        ),
    ]
    if CHECKSUM_OK_ON_THE_WIRE in checksums:
        rows.append(
            row(
                "… of the others, verifying once the address recorded on arrival is undone",
                checksums.count(CHECKSUM_OK_ON_THE_WIRE),
                f"of {len(replied) - checksums.count(CHECKSUM_OK)}",
                "Record route: the receiving kernel writes its address into the option after "
                "checking the checksum and, for a packet it keeps, never recomputes it, so a raw "
                "socket reads a header that fails. Taking that last address back out gives the "
                "header as it was on the wire, and its checksum verifies.",
            )
        )
    if capture.foreign:
        rows.append(
            row(
                "other ICMP seen",
                capture.foreign,
                "packets",
                "; ".join(capture.undecodable) or "another identifier, or not an echo",
            )
        )
    if replied:
        rows += _ttl_rows(replied, ttl)
    if hdrincl:
        rows.append(_hdrincl_row(echoes))
    rows.append(_packets_row(capture))
    return rows


def _ip_checksum(echo: Echo) -> str:
    return "" if echo.reply is None else ip_checksum_verdict(echo.reply)


def _ttl_rows(replied: list[Echo], ttl: int) -> list[dict[str, Any]]:
    reply_ttls = sorted({e.decoded.ip.ttl for e in replied})
    requests = [e.request for e in replied if e.request is not None]
    request_ttls = sorted({parse_icmp_packet(r).ip.ttl for r in requests})
    default_ttl = sysctl("net.ipv4.ip_default_ttl")
    return [
        row(
            "TTL of our requests, as decoded",
            ", ".join(map(str, request_ttls)) or "—",
            "hops",
            f"set to {ttl} (IP_TTL or our own header); loopback never forwards, so it is not "
            "decremented",
        ),
        row(
            "TTL of the replies, as decoded",
            ", ".join(map(str, reply_ttls)),
            "hops",
            "The kernel answers with its own TTL, this namespace's net.ipv4.ip_default_ttl "
            f"({default_ttl}), whatever the request carried.",
        ),
    ]


def _hdrincl_row(echoes: list[Echo]) -> dict[str, Any]:
    """What the kernel changed in the IP headers we built (it may fill length, id, checksum)."""
    changed_fields: dict[str, int] = {}
    compared = changed_headers = 0
    for echo in echoes:
        if echo.request is None:
            continue
        compared += 1
        ours, seen = parse_icmp_packet(echo.sent).ip, parse_icmp_packet(echo.request).ip
        differing = [name for name in HDRINCL_FIELDS if getattr(ours, name) != getattr(seen, name)]
        changed_headers += bool(differing)
        for name in differing:
            changed_fields[name] = changed_fields.get(name, 0) + 1
    what = ", ".join(f"{name} in {n}" for name, n in changed_fields.items())
    return row(
        "IP headers we built (IP_HDRINCL) that the kernel changed",
        changed_headers,
        f"of {compared}",
        (f"Changed: {what}. " if what else "Every header went out exactly as we built it. ")
        + "raw(7): with IP_HDRINCL the kernel always fills in the total length and the checksum, "
        "and the identification and source address only when they are zero.",
    )


def _packets_row(capture: Capture) -> dict[str, Any]:
    """The panel: a few packets byte by byte, and every packet in a compact table."""
    replied = [e for e in capture.echoes if e.reply is not None]
    shown: list[dict[str, Any]] = []
    if capture.echoes and capture.echoes[0].request is not None:
        shown.append(
            _shown("echo request #1, our own, as it came back in on lo", capture.echoes[0])
        )
    for echo in replied[:1] + replied[1:][-1:]:
        shown.append(_shown(f"echo reply #{echo.seq}", echo, reply=True))
    table = []
    for echo in capture.echoes:
        packet = echo.decoded
        kernel_ns = _kernel_ns(echo)
        table.append(
            [
                echo.seq,
                None if echo.rtt_ns is None else round(echo.rtt_ns * US_PER_NS, 1),
                None if kernel_ns is None else round(kernel_ns * US_PER_NS, 1),
                packet and packet.ip.ttl,
                packet and packet.ip.identification,
                packet and packet.ip.total_length,
                _ip_checksum(echo),
                packet and (CHECKSUM_OK if packet.icmp.checksum_ok else CHECKSUM_BAD),
            ]
        )
    return row(
        "packets, byte by byte",
        len(replied),
        "replies",
        "The first request and the first and last replies drawn as 32-bit rows; every echo in "
        "the table (RTT and kernel turnaround in µs; a blank RTT is a lost echo).",
        detail={
            "panel": "ip_packets",
            "packets": shown,
            "columns": list(TABLE_COLUMNS),
            "table": table,
        },
    )


def _shown(label: str, echo: Echo, *, reply: bool = False) -> dict[str, Any]:
    data = echo.reply if reply else echo.request
    return {
        "label": label,
        "hex": (data or b"").hex(),
        "rtt_us": None if not reply or echo.rtt_ns is None else round(echo.rtt_ns * US_PER_NS, 1),
    }


def _capability_rows(refused: Mapping[str, Any]) -> list[dict[str, Any]]:
    ping_range = sysctl("net.ipv4.ping_group_range")
    gid = refused.get("gid")
    dgram_note = (
        f"An unprivileged 'ping socket' needs no capability, only a gid in "
        f"net.ipv4.ping_group_range ({ping_range!r} here; gid {gid} inside). That range is per "
        "network namespace and a new one starts closed (1 0, nobody); the kernel shows it in "
        "this user namespace's ids, so unmapped group ids read as 65534 (overflowgid). On the "
        "host Debian/systemd opens it to all groups, which is how ping works without privilege."
    )
    return [
        errno_row(
            "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) with CAP_NET_RAW",
            0,
            "the worker keeps CAP_NET_RAW, for this namespace only",
        ),
        errno_row(
            "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) without CAP_NET_RAW",
            refused.get("raw"),
            f"in a child that dropped CAP_NET_RAW with capset(2): still uid {refused.get('uid')},"
            f" {refused.get('effective')} effective capabilities left, CAP_NET_RAW not among them."
            " It is the capability, not the uid, that a raw socket needs.",
        ),
        errno_row(
            "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) with CAP_NET_RAW",
            refused.get("with_cap_dgram"),
            dgram_note,
        ),
        errno_row(
            "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) without CAP_NET_RAW",
            refused.get("dgram"),
            "the same ping socket from the child: the capability makes no difference to it",
        ),
        row("net.ipv4.ping_group_range", ping_range, "gids", "read in this network namespace"),
    ]


def _namespace_rows(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
) -> list[dict[str, Any]]:
    return [
        *netns.namespace_rows(
            before,
            after,
            during="the echoes",
            note="from /proc/net/dev: each echo is two packets on lo, the request and the reply",
        ),
        row("kernel", kernel_release(), "", "host fact"),
    ]
