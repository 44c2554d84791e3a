"""The IPv4/ICMP decoder on byte strings captured from raw-icmp runs in the sandbox (recvfrom on
a raw ICMP socket, loopback), and on the textbook header of RFC 1071's worked example."""

from __future__ import annotations

import pytest

from sysops.worker.toolkit import inet

PATTERN_56 = bytes(range(56))
# Echo reply #1 of a run with payload 56 (identifier 2: the worker is pid 2 in its namespace).
REPLY = bytes.fromhex("4500005448ed0000400133ba7f0000017f000001000008ea00020001" + PATTERN_56.hex())
# Our own echo request #1 with record route, as the raw socket read it back on lo: 9 slots,
# two filled (once on the way out, once on the way in), then "end of options": IHL 15.
REQUEST_RR = bytes.fromhex(
    "4f00007c224640004001ff927f0000017f000001"
    "07270c7f0000017f000001" + "00" * 29 + "080000ea00020001" + PATTERN_56.hex()
)
# The kernel's reply to it: the options echoed, with two more addresses recorded.
REPLY_RR = bytes.fromhex(
    "4f00007c22470000400134947f0000017f000001"
    "0727147f0000017f0000017f0000017f000001" + "00" * 21 + "000008ea00020001" + PATTERN_56.hex()
)
# The IPv4 header of the classic worked example (a UDP datagram, 192.168.0.1 → .199).
TEXTBOOK = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
TEXTBOOK_CHECKSUM = 0xB861


def test_the_checksum_of_the_textbook_header() -> None:
    assert inet.internet_checksum(TEXTBOOK) == TEXTBOOK_CHECKSUM
    filled = TEXTBOOK[:10] + TEXTBOOK_CHECKSUM.to_bytes(2, "big") + TEXTBOOK[12:]
    assert inet.internet_checksum(filled) == 0
    assert inet.parse_ipv4(filled).checksum_ok


def test_an_odd_length_is_padded_with_a_zero_byte() -> None:
    assert inet.internet_checksum(b"\x01") == inet.internet_checksum(b"\x01\x00") == 0xFEFF


def test_it_decodes_every_field_of_a_captured_reply() -> None:
    packet = inet.parse_icmp_packet(REPLY)
    ip = packet.ip
    assert (ip.version, ip.ihl, ip.header_bytes, ip.tos) == (4, 5, 20, 0)
    assert ip.total_length == 84 == len(REPLY)
    assert ip.identification == 0x48ED
    assert (ip.flags, ip.dont_fragment, ip.more_fragments, ip.fragment_offset) == (
        0,
        False,
        False,
        0,
    )
    assert (ip.ttl, ip.protocol, ip.header_checksum) == (64, 1, 0x33BA)
    assert (ip.source, ip.destination) == ("127.0.0.1", "127.0.0.1")
    assert ip.options == b"" and ip.checksum_ok
    icmp = packet.icmp
    assert (icmp.type, icmp.type_name, icmp.code) == (0, "echo reply", 0)
    assert (icmp.checksum, icmp.identifier, icmp.sequence) == (0x08EA, 2, 1)
    assert icmp.payload == PATTERN_56 and icmp.checksum_ok
    assert inet.ip_checksum_verdict(REPLY) == inet.CHECKSUM_OK


def test_it_decodes_a_header_with_options() -> None:
    request = inet.parse_icmp_packet(REQUEST_RR)
    assert request.ip.ihl == 15 and request.ip.header_bytes == 60
    assert request.ip.dont_fragment and request.ip.flags == 0b010
    assert request.icmp.type == inet.ICMP_ECHO_REQUEST and request.icmp.checksum_ok
    (route, end) = inet.ip_options(request.ip.options)
    assert (route["name"], route["length"], route["addresses"]) == (
        "record route",
        39,
        ["127.0.0.1", "127.0.0.1"],
    )
    assert end == {"type": 0, "name": "end of options", "offset": 39, "length": 1}
    reply = inet.parse_icmp_packet(REPLY_RR)
    assert reply.ip.to_dict()["options"] == ["record route", "end of options"]
    assert inet.ip_options(reply.ip.options)[0]["addresses"] == ["127.0.0.1"] * 4
    assert reply.icmp.payload == PATTERN_56


def test_a_header_the_receiver_recorded_into_verifies_only_as_it_was_on_the_wire() -> None:
    for packet in (REQUEST_RR, REPLY_RR):
        assert not inet.parse_ipv4(packet).checksum_ok
        restored = inet.without_last_recorded_route(packet)
        assert restored is not None and inet.internet_checksum(restored) == 0
        assert inet.ip_checksum_verdict(packet) == inet.CHECKSUM_OK_ON_THE_WIRE
    assert inet.without_last_recorded_route(REPLY) is None


def test_a_bad_checksum_is_reported_not_raised() -> None:
    corrupted = bytearray(REPLY)
    corrupted[8] = 63  # the TTL, without fixing the checksum
    assert not inet.parse_ipv4(bytes(corrupted)).checksum_ok
    assert inet.ip_checksum_verdict(bytes(corrupted)) == inet.CHECKSUM_BAD
    corrupted = bytearray(REPLY)
    corrupted[-1] ^= 0xFF  # a payload byte: only the ICMP checksum covers it
    packet = inet.parse_icmp_packet(bytes(corrupted))
    assert packet.ip.checksum_ok and not packet.icmp.checksum_ok


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (REPLY[:19], "at least 20"),
        (bytes([0x65]) + REPLY[1:], "version 6"),
        (bytes([0x44]) + REPLY[1:], "IHL 4"),
        (REQUEST_RR[:40], "only 40 present"),
    ],
)
def test_what_is_not_an_ipv4_header_is_a_packet_error(data: bytes, message: str) -> None:
    with pytest.raises(inet.PacketError, match=message):
        inet.parse_ipv4(data)


def test_a_non_icmp_packet_or_a_short_icmp_header_is_a_packet_error() -> None:
    with pytest.raises(inet.PacketError, match="protocol 17"):
        inet.parse_icmp_packet(TEXTBOOK + bytes(8))
    with pytest.raises(inet.PacketError, match="8"):
        inet.parse_icmp_echo(b"\x00\x00\x00")


def test_malformed_options_end_the_list() -> None:
    assert inet.ip_options(bytes([1, 1, 7, 40, 4]))[-1]["name"] == "malformed"
    assert [o["name"] for o in inet.ip_options(bytes([1, 0, 7, 7]))] == [
        "no operation",
        "end of options",
    ]


def loopback_header(**fields) -> bytes:
    return inet.build_ipv4(
        source="127.0.0.1", destination="127.0.0.1", protocol=inet.IPPROTO_ICMP, **fields
    )


def test_what_it_builds_is_what_the_kernel_sent() -> None:
    icmp = inet.build_icmp_echo(2, 1, PATTERN_56, type_=inet.ICMP_ECHO_REPLY)
    header = loopback_header(payload_bytes=len(icmp), ttl=64, identification=0x48ED)
    assert header + icmp == REPLY
    options = inet.record_route_option(9)
    assert len(options) == 39 and options[:3] == bytes([7, 39, 4])
    with_options = loopback_header(payload_bytes=0, ttl=1, identification=1, options=options)
    assert len(with_options) == 60 and inet.parse_ipv4(with_options).checksum_ok
    with pytest.raises(ValueError, match="at most 40"):
        loopback_header(payload_bytes=0, ttl=1, identification=1, options=bytes(41))


@pytest.mark.parametrize(
    ("layout", "total_bits"), [(inet.IPV4_LAYOUT, 160), (inet.ICMP_ECHO_LAYOUT, 64)]
)
def test_the_diagram_layouts_tile_their_header(layout, total_bits: int) -> None:
    next_bit = 0
    for _, first_bit, bits in layout:
        assert first_bit == next_bit
        next_bit += bits
    assert next_bit == total_bits
