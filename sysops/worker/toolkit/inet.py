"""IPv4 and ICMP by hand: the Internet checksum, headers built and parsed field by field, and the
field layout a packet diagram draws. Pure functions on bytes (no sockets, no Django), so the
probe that captures packets and the web page that draws them decode with the same code.

Layouts follow RFC 791 (IPv4) and RFC 792 (ICMP echo); the checksum is RFC 1071's.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Any

IPPROTO_ICMP = 1
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
IPV4_VERSION = 4
IPV4_MIN_HEADER_BYTES = 20
IPV4_MAX_HEADER_BYTES = 60  # IHL is 4 bits of 32-bit words: 15 × 4
ICMP_ECHO_HEADER_BYTES = 8
IP_FLAG_RESERVED = 0b100
IP_FLAG_DONT_FRAGMENT = 0b010
IP_FLAG_MORE_FRAGMENTS = 0b001

# IP option types (RFC 791 and the IANA registry) a learner may meet.
IP_OPTION_NAMES = {
    0: "end of options",
    1: "no operation",
    7: "record route",
    68: "timestamp",
    130: "security",
    131: "loose source route",
    137: "strict source route",
    148: "router alert",
}
IPOPT_END = 0
IPOPT_NOOP = 1
IPOPT_RR = 7
IPOPT_RR_POINTER_START = 4  # the pointer counts from 1; the first address slot is at byte 4

CHECKSUM_OK = "ok"
CHECKSUM_OK_ON_THE_WIRE = "ok on the wire"
CHECKSUM_BAD = "bad"

ICMP_TYPE_NAMES = {
    0: "echo reply",
    3: "destination unreachable",
    5: "redirect",
    8: "echo request",
    11: "time exceeded",
    12: "parameter problem",
}

# (field, first bit, width in bits) of the fixed IPv4 header, bit 0 being the first bit on the
# wire: the rows of the familiar 32-bit-wide diagram. Options follow at bit 160.
IPV4_LAYOUT: tuple[tuple[str, int, int], ...] = (
    ("version", 0, 4),
    ("ihl", 4, 4),
    ("tos", 8, 8),
    ("total_length", 16, 16),
    ("identification", 32, 16),
    ("flags", 48, 3),
    ("fragment_offset", 51, 13),
    ("ttl", 64, 8),
    ("protocol", 72, 8),
    ("header_checksum", 80, 16),
    ("source", 96, 32),
    ("destination", 128, 32),
)
ICMP_ECHO_LAYOUT: tuple[tuple[str, int, int], ...] = (
    ("type", 0, 8),
    ("code", 8, 8),
    ("checksum", 16, 16),
    ("identifier", 32, 16),
    ("sequence", 48, 16),
)


class PacketError(ValueError):
    """Bytes that are not the header they were taken for (too short, wrong version, …)."""


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the one's complement of the one's complement sum of 16-bit big-endian words
    (an odd last byte padded with a zero). Over a header that holds its own checksum, the
    result is 0 when the checksum is right."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass(frozen=True)
class IPv4Header:
    version: int
    ihl: int  # header length in 32-bit words
    tos: int
    total_length: int
    identification: int
    flags: int  # 3 bits: reserved, DF, MF
    fragment_offset: int  # in 8-byte units
    ttl: int
    protocol: int
    header_checksum: int
    source: str
    destination: str
    options: bytes
    checksum_ok: bool  # the header sums to zero with its checksum in place

    @property
    def header_bytes(self) -> int:
        return self.ihl * 4

    @property
    def dont_fragment(self) -> bool:
        return bool(self.flags & IP_FLAG_DONT_FRAGMENT)

    @property
    def more_fragments(self) -> bool:
        return bool(self.flags & IP_FLAG_MORE_FRAGMENTS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "ihl": self.ihl,
            "header_bytes": self.header_bytes,
            "tos": self.tos,
            "total_length": self.total_length,
            "identification": self.identification,
            "flags": self.flags,
            "dont_fragment": self.dont_fragment,
            "more_fragments": self.more_fragments,
            "fragment_offset": self.fragment_offset,
            "ttl": self.ttl,
            "protocol": self.protocol,
            "header_checksum": self.header_checksum,
            "checksum_ok": self.checksum_ok,
            "source": self.source,
            "destination": self.destination,
            "options": [option["name"] for option in ip_options(self.options)],
        }


def parse_ipv4(packet: bytes) -> IPv4Header:
    """The IPv4 header at the start of ``packet``, every field decoded and the checksum checked.
    Raises PacketError when the bytes cannot be one (the checksum failing is not an error: it
    is reported in ``checksum_ok``)."""
    if len(packet) < IPV4_MIN_HEADER_BYTES:
        raise PacketError(f"{len(packet)} bytes: an IPv4 header has at least 20")
    version_ihl, tos, total_length, identification, flags_fragment, ttl, protocol, checksum = (
        struct.unpack_from("!BBHHHBBH", packet)
    )
    version, ihl = version_ihl >> 4, version_ihl & 0x0F
    if version != IPV4_VERSION:
        raise PacketError(f"version {version}, not 4")
    if ihl < 5:
        raise PacketError(f"IHL {ihl}: a header is at least 5 words")
    header_bytes = ihl * 4
    if len(packet) < header_bytes:
        raise PacketError(f"IHL says {header_bytes} header bytes, only {len(packet)} present")
    return IPv4Header(
        version=version,
        ihl=ihl,
        tos=tos,
        total_length=total_length,
        identification=identification,
        flags=flags_fragment >> 13,
        fragment_offset=flags_fragment & 0x1FFF,
        ttl=ttl,
        protocol=protocol,
        header_checksum=checksum,
        source=socket.inet_ntoa(packet[12:16]),
        destination=socket.inet_ntoa(packet[16:20]),
        options=bytes(packet[IPV4_MIN_HEADER_BYTES:header_bytes]),
        checksum_ok=internet_checksum(bytes(packet[:header_bytes])) == 0,
    )


def build_ipv4(
    *,
    source: str,
    destination: str,
    protocol: int,
    payload_bytes: int,
    ttl: int,
    identification: int,
    tos: int = 0,
    flags: int = 0,
    options: bytes = b"",
) -> bytes:
    """An IPv4 header (no fragmentation) with its checksum, options padded to 32 bits."""
    options += b"\x00" * (-len(options) % 4)
    header_bytes = IPV4_MIN_HEADER_BYTES + len(options)
    if header_bytes > IPV4_MAX_HEADER_BYTES:
        raise ValueError(f"{len(options)} bytes of options: at most 40 fit")
    header = (
        struct.pack(
            "!BBHHHBBH4s4s",
            (IPV4_VERSION << 4) | (header_bytes // 4),
            tos,
            header_bytes + payload_bytes,
            identification,
            flags << 13,
            ttl,
            protocol,
            0,
            socket.inet_aton(source),
            socket.inet_aton(destination),
        )
        + options
    )
    return header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]


def ip_options(options: bytes) -> list[dict[str, Any]]:
    """The options area split into options: ``{type, name, offset, length, addresses}``
    (``addresses`` for the route options: the slots filled so far). Stops at "end of options";
    a malformed length ends the list with a ``malformed`` entry rather than an exception."""
    found: list[dict[str, Any]] = []
    offset = 0
    while offset < len(options):
        kind = options[offset]
        name = IP_OPTION_NAMES.get(kind, f"option {kind}")
        if kind in (IPOPT_END, IPOPT_NOOP):
            found.append({"type": kind, "name": name, "offset": offset, "length": 1})
            if kind == IPOPT_END:
                break
            offset += 1
            continue
        length = options[offset + 1] if offset + 1 < len(options) else 0
        if length < 2 or offset + length > len(options):
            found.append({"type": kind, "name": "malformed", "offset": offset, "length": 0})
            break
        option: dict[str, Any] = {"type": kind, "name": name, "offset": offset, "length": length}
        if kind in (IPOPT_RR, 131, 137) and length >= 3:
            pointer = options[offset + 2]
            filled = options[offset + 3 : offset + min(pointer - 1, length)]
            option["addresses"] = [
                socket.inet_ntoa(filled[i : i + 4]) for i in range(0, len(filled) - 3, 4)
            ]
        found.append(option)
        offset += length
    return found


def record_route_option(slots: int) -> bytes:
    """A record-route option with ``slots`` empty 4-byte address slots (at most 9 fit)."""
    length = 3 + 4 * slots
    return bytes((IPOPT_RR, length, IPOPT_RR_POINTER_START)) + bytes(4 * slots)


def without_last_recorded_route(header: bytes) -> bytes | None:
    """``header`` with the last address of its record-route option taken back out (pointer
    moved back, slot zeroed), or None when no address is recorded.

    A kernel receiving a packet with record route writes its own address into the option after
    it has verified the checksum (ip_options_compile on input) and, for a packet delivered
    locally, does not recompute the checksum. What a raw socket reads then fails the checksum,
    while this — the header as it was on the wire — passes."""
    header_bytes = (header[0] & 0x0F) * 4
    for option in ip_options(header[IPV4_MIN_HEADER_BYTES:header_bytes]):
        if option["type"] == IPOPT_RR and option.get("addresses"):
            start = IPV4_MIN_HEADER_BYTES + option["offset"]
            pointer = header[start + 2] - 4
            restored = bytearray(header[:header_bytes])
            restored[start + 2] = pointer
            restored[start + pointer - 1 : start + pointer + 3] = bytes(4)
            return bytes(restored)
    return None


def ip_checksum_verdict(packet: bytes) -> str:
    """CHECKSUM_OK when the IPv4 header at the start of ``packet`` verifies as it is,
    CHECKSUM_OK_ON_THE_WIRE when only the header before the receiving kernel's record-route
    entry does (see without_last_recorded_route), else CHECKSUM_BAD."""
    if parse_ipv4(packet).checksum_ok:
        return CHECKSUM_OK
    restored = without_last_recorded_route(packet)
    if restored is not None and internet_checksum(restored) == 0:
        return CHECKSUM_OK_ON_THE_WIRE
    return CHECKSUM_BAD


@dataclass(frozen=True)
class IcmpEcho:
    type: int
    code: int
    checksum: int
    identifier: int
    sequence: int
    payload: bytes
    checksum_ok: bool  # over the whole ICMP message, payload included

    @property
    def type_name(self) -> str:
        return ICMP_TYPE_NAMES.get(self.type, f"type {self.type}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "type_name": self.type_name,
            "code": self.code,
            "checksum": self.checksum,
            "checksum_ok": self.checksum_ok,
            "identifier": self.identifier,
            "sequence": self.sequence,
            "payload_bytes": len(self.payload),
        }


def parse_icmp_echo(message: bytes) -> IcmpEcho:
    """An ICMP message read as an echo request or reply (for other types, the identifier and
    sequence are the "rest of header" word split in two)."""
    if len(message) < ICMP_ECHO_HEADER_BYTES:
        raise PacketError(f"{len(message)} bytes: an ICMP header has 8")
    type_, code, checksum, identifier, sequence = struct.unpack_from("!BBHHH", message)
    return IcmpEcho(
        type=type_,
        code=code,
        checksum=checksum,
        identifier=identifier,
        sequence=sequence,
        payload=bytes(message[ICMP_ECHO_HEADER_BYTES:]),
        checksum_ok=internet_checksum(bytes(message)) == 0,
    )


def build_icmp_echo(
    identifier: int, sequence: int, payload: bytes, *, type_: int = ICMP_ECHO_REQUEST
) -> bytes:
    """An ICMP echo request (or reply) with its checksum over header and payload."""
    message = struct.pack("!BBHHH", type_, 0, 0, identifier, sequence) + payload
    return message[:2] + struct.pack("!H", internet_checksum(message)) + message[4:]


@dataclass(frozen=True)
class IcmpPacket:
    """An ICMP message as a raw socket returns it: the IP header, then the ICMP message."""

    ip: IPv4Header
    icmp: IcmpEcho


def parse_icmp_packet(packet: bytes) -> IcmpPacket:
    """What recvfrom on a raw ICMP socket returns: IP header (IHL words) then ICMP."""
    ip = parse_ipv4(packet)
    if ip.protocol != IPPROTO_ICMP:
        raise PacketError(f"protocol {ip.protocol}, not ICMP (1)")
    end = min(len(packet), ip.total_length) if ip.total_length >= ip.header_bytes else len(packet)
    return IcmpPacket(ip=ip, icmp=parse_icmp_echo(packet[ip.header_bytes : end]))
