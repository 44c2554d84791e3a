"""What a raw-icmp run must have captured, built by hand, field by field, in the test."""

from __future__ import annotations

import socket
import struct
from typing import Any

from sysops.worker.toolkit.inet import internet_checksum, parse_icmp_packet

PAYLOAD_PATTERN = bytes(range(256)) * 6  # the probe's payload: 0, 1, 2, … 255, 0, 1, …


def expected_echo_reply(captured: bytes, *, payload_bytes: int, ttl: int = 64) -> bytes:
    """The loopback echo reply the kernel owes us for ``captured``'s sequence number: IPv4, no
    options, no DF, ``ttl``, ICMP, 127.0.0.1 → 127.0.0.1, type 0 code 0, our payload. Only the
    IP identification (the kernel's choice) and the ICMP identifier and sequence are taken from
    the capture."""
    decoded = parse_icmp_packet(captured)
    payload = PAYLOAD_PATTERN[:payload_bytes]
    icmp = struct.pack("!BBHHH", 0, 0, 0, decoded.icmp.identifier, decoded.icmp.sequence)
    icmp = icmp[:2] + struct.pack("!H", internet_checksum(icmp + payload)) + icmp[4:] + payload
    loopback = socket.inet_aton("127.0.0.1")
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,  # version 4, IHL 5
        0,  # TOS
        20 + len(icmp),
        decoded.ip.identification,
        0,  # flags and fragment offset: the kernel's echo reply is not marked DF
        ttl,
        socket.IPPROTO_ICMP,
        0,
        loopback,
        loopback,
    )
    header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
    return header + icmp


def packets_panel(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The detail of the raw-icmp row that carries the packet diagrams and the table."""
    (row,) = [r for r in rows.values() if (r.get("detail") or {}).get("panel") == "ip_packets"]
    return row["detail"]
