"""Packet diagrams: the bytes a probe captured, decoded here again with the probe's own decoder
(sysops.worker.toolkit.inet) into the 32-bit-wide rows of RFC 791. The hex comes from the
worker, so anything undecodable becomes an error line, never an exception."""

from __future__ import annotations

from typing import Any

from django import template

from sysops.worker.toolkit.inet import (
    CHECKSUM_BAD,
    CHECKSUM_OK,
    CHECKSUM_OK_ON_THE_WIRE,
    ICMP_ECHO_HEADER_BYTES,
    ICMP_ECHO_LAYOUT,
    IPPROTO_ICMP,
    IPV4_LAYOUT,
    IPV4_MIN_HEADER_BYTES,
    IcmpEcho,
    IPv4Header,
    PacketError,
    ip_checksum_verdict,
    ip_options,
    parse_icmp_echo,
    parse_ipv4,
)

register = template.Library()

WORD_BITS = 32
WORD_BYTES = 4
MAX_HEX_CHARS = 2 * 65_535  # one IP packet
PAYLOAD_HEX_BYTES = 16  # payload bytes shown beside its row; the rest is counted
LABELS = {
    "version": "version",
    "ihl": "IHL",
    "tos": "TOS",
    "total_length": "total length",
    "identification": "identification",
    "flags": "flags",
    "fragment_offset": "fragment offset",
    "ttl": "TTL",
    "protocol": "protocol",
    "header_checksum": "header checksum",
    "source": "source address",
    "destination": "destination address",
    "type": "type",
    "code": "code",
    "checksum": "checksum",
    "identifier": "identifier",
    "sequence": "sequence",
}
PROTOCOL_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP"}


@register.filter
def packet_diagram(hex_text: Any) -> dict[str, Any]:
    """``{rows, length, ip, icmp, ip_checksum, options, error}`` for a captured IPv4 packet in
    hex: ``rows`` are 32-bit words, each ``{offset, hex, section, cells}``, a cell being
    ``{field, label, bits, value}``."""
    if not isinstance(hex_text, str) or len(hex_text) > MAX_HEX_CHARS:
        return {"error": "no packet bytes"}
    try:
        packet = bytes.fromhex(hex_text)
        ip = parse_ipv4(packet)
    except (ValueError, PacketError) as exc:
        return {"error": f"not an IPv4 packet: {exc}"}
    rows = _ip_rows(packet, ip)
    icmp = None
    if ip.protocol == IPPROTO_ICMP:
        try:
            icmp = parse_icmp_echo(packet[ip.header_bytes : max(ip.total_length, ip.header_bytes)])
        except PacketError as exc:
            return {"error": f"ICMP: {exc}", "rows": rows, "length": len(packet)}
        rows += _icmp_rows(packet, ip.header_bytes, icmp)
    return {
        "rows": rows,
        "length": len(packet),
        "ip": ip.to_dict(),
        "icmp": icmp and icmp.to_dict(),
        "ip_checksum": ip_checksum_verdict(packet),
        "options": ip_options(ip.options),
        "bit_ticks": list(range(0, WORD_BITS, 8)),
    }


def _ip_rows(packet: bytes, ip: IPv4Header) -> list[dict[str, Any]]:
    values = {
        "version": str(ip.version),
        "ihl": f"{ip.ihl} ({ip.header_bytes} B)",
        "tos": f"0x{ip.tos:02x}",
        "total_length": f"{ip.total_length} B",
        "identification": f"0x{ip.identification:04x} ({ip.identification})",
        "flags": _flags(ip),
        "fragment_offset": str(ip.fragment_offset),
        "ttl": str(ip.ttl),
        "protocol": f"{ip.protocol} ({PROTOCOL_NAMES.get(ip.protocol, '?')})",
        "header_checksum": f"0x{ip.header_checksum:04x} {_mark(ip_checksum_verdict(packet))}",
        "source": ip.source,
        "destination": ip.destination,
    }
    rows = _layout_rows(packet, 0, IPV4_LAYOUT, values, "ip")
    return rows + _pack_rows(packet, IPV4_MIN_HEADER_BYTES, _option_cells(ip.options), "options")


def _option_cells(options: bytes) -> list[dict[str, Any]]:
    """The options area as cells of whole bytes: each option's type, length and pointer, its
    address slots (a route option's addresses are not word-aligned: they start at its byte 3),
    and the padding after "end of options"."""
    cells: list[dict[str, Any]] = []
    covered = 0
    for option in ip_options(options):
        start, length = option["offset"], max(option["length"], 1)
        cells.append(_cell("options", "option type", 8, f"{option['type']} {option['name']}"))
        if length > 1:
            cells.append(_cell("options", "length", 8, f"{length} B"))
        if option.get("addresses") is not None:
            pointer = options[start + 2]
            cells.append(_cell("options", "pointer", 8, str(pointer)))
            addresses = option["addresses"]
            for slot in range((length - 3) // WORD_BYTES):
                value = addresses[slot] if slot < len(addresses) else "empty"
                cells.append(_cell("options", f"route slot {slot + 1}", WORD_BITS, value))
        elif length > 2:
            cells.append(_cell("options", "option data", 8 * (length - 2), f"{length - 2} B"))
        covered = start + length
    if covered < len(options):
        cells.append(_cell("options", "padding", 8 * (len(options) - covered), ""))
    return cells


def _cell(field: str, label: str, bits: int, value: str) -> dict[str, Any]:
    return {"field": field, "label": label, "bits": bits, "value": value}


def _pack_rows(
    packet: bytes, start: int, cells: list[dict[str, Any]], section: str
) -> list[dict[str, Any]]:
    """Cells laid into 32-bit rows from byte ``start``; a cell crossing a row boundary is split,
    its second part labelled "(cont.)" as in RFC 791's own option diagrams."""
    rows: list[dict[str, Any]] = []
    current: list[dict[str, Any]] = []
    used_bits = 0
    for cell in cells:
        parts = []
        remaining = cell["bits"]
        while remaining:
            bits = min(remaining, WORD_BITS - (used_bits + sum(parts)) % WORD_BITS)
            parts.append(bits)
            remaining -= bits
        widest = parts.index(max(parts))  # the value goes where it has the most room
        for index, bits in enumerate(parts):
            label = cell["label"] if index == 0 else f"{cell['label']} (cont.)"
            value = cell["value"] if index == widest else ""
            current.append({**cell, "label": label, "bits": bits, "value": value})
            used_bits += bits
            if used_bits == WORD_BITS:
                offset = start + len(rows) * WORD_BYTES
                rows.append(_row(packet, offset, WORD_BYTES, section, current))
                current, used_bits = [], 0
    if current:
        rows.append(_row(packet, start + len(rows) * WORD_BYTES, WORD_BYTES, section, current))
    return rows


def _flags(ip: IPv4Header) -> str:
    set_flags = [name for name, on in (("DF", ip.dont_fragment), ("MF", ip.more_fragments)) if on]
    return f"{ip.flags:03b} {' '.join(set_flags) or '—'}"


def _mark(verdict: str) -> str:
    return {CHECKSUM_OK: "✓", CHECKSUM_OK_ON_THE_WIRE: "✓ on the wire"}.get(verdict, "✗")


def _icmp_rows(packet: bytes, start: int, icmp: IcmpEcho) -> list[dict[str, Any]]:
    verdict = CHECKSUM_OK if icmp.checksum_ok else CHECKSUM_BAD
    values = {
        "type": f"{icmp.type} ({icmp.type_name})",
        "code": str(icmp.code),
        "checksum": f"0x{icmp.checksum:04x} {_mark(verdict)}",
        "identifier": f"0x{icmp.identifier:04x}",
        "sequence": str(icmp.sequence),
    }
    rows = _layout_rows(packet, start, ICMP_ECHO_LAYOUT, values, "icmp")
    payload_start = start + ICMP_ECHO_HEADER_BYTES
    if icmp.payload:
        cell = {
            "field": "payload",
            "label": "payload",
            "bits": WORD_BITS,
            "value": f"{len(icmp.payload)} B",
        }
        rows.append(_row(packet, payload_start, PAYLOAD_HEX_BYTES, "payload", [cell]))
    return rows


def _layout_rows(
    packet: bytes,
    start: int,
    layout: tuple[tuple[str, int, int], ...],
    values: dict[str, str],
    section: str,
) -> list[dict[str, Any]]:
    cells = [_cell(field, LABELS[field], bits, values[field]) for field, _, bits in layout]
    return _pack_rows(packet, start, cells, section)


def _row(
    packet: bytes, offset: int, length: int, section: str, cells: list[dict[str, Any]]
) -> dict[str, Any]:
    chunk = packet[offset : offset + length]
    more = len(packet) - offset - length
    hex_text = " ".join(f"{byte:02x}" for byte in chunk)
    if section == "payload" and more > 0:
        hex_text += f" … +{more} B"
    return {"offset": offset, "hex": hex_text, "section": section, "cells": cells}
