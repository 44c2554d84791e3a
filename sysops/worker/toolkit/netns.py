"""The network namespace a probe runs in: its identity and its interfaces' packet counters.

/proc/net is the reading process's own namespace, so inside the sandbox this lists only the
sandbox's loopback: the evidence that a network experiment's packets stayed there (the tests
compare it with the host's counters).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

NET_DEV_PATH = Path("/proc/net/dev")
NETNS_LINK = "/proc/self/ns/net"
# /proc/net/dev columns after "iface:": 8 receive counters, then 8 transmit counters.
RX_BYTES, RX_PACKETS, TX_BYTES, TX_PACKETS = 0, 1, 8, 9


def namespace_id() -> str | None:
    """``net:[4026532186]``: the same text for every process in one network namespace."""
    try:
        return os.readlink(NETNS_LINK)
    except OSError:
        return None


def interface_counters() -> dict[str, dict[str, int]]:
    """``{"lo": {rx_packets, tx_packets, rx_bytes, tx_bytes}, ...}`` of this namespace."""
    counters: dict[str, dict[str, int]] = {}
    try:
        lines = NET_DEV_PATH.read_text().splitlines()[2:]  # two header lines
    except OSError:
        return counters
    for line in lines:
        name, sep, rest = line.partition(":")
        values = rest.split()
        if not sep or len(values) < TX_PACKETS + 1:
            continue
        counters[name.strip()] = {
            "rx_bytes": int(values[RX_BYTES]),
            "rx_packets": int(values[RX_PACKETS]),
            "tx_bytes": int(values[TX_BYTES]),
            "tx_packets": int(values[TX_PACKETS]),
        }
    return counters


def packets_sent(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> int:
    """Packets all interfaces transmitted between two ``interface_counters()`` readings."""
    return sum(
        counts["tx_packets"] - before.get(name, {}).get("tx_packets", 0)
        for name, counts in after.items()
    )


def namespace_rows(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], *, during: str, note: str
) -> list[dict[str, Any]]:
    """The result rows that say where a network experiment ran: the namespace with its
    interfaces, and the packets they sent ``during`` the work (between two
    ``interface_counters()`` readings), with ``note`` saying what those packets were."""
    return [
        {
            "metric": "network namespace",
            "value": namespace_id(),
            "unit": "",
            "note": f"interfaces in it: {', '.join(sorted(after)) or 'none'}. The sandbox's "
            "namespace holds only its own lo, so nothing sent here can reach the host's "
            "interfaces.",
        },
        {
            "metric": f"packets sent on this namespace's interfaces during {during}",
            "value": packets_sent(before, after),
            "unit": "packets",
            "note": note,
        },
    ]
