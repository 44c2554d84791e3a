"""The host's own packet counters, read from outside the sandbox (this test process is in the
host's network namespace): every interface's counters (/proc/net/dev, the same numbers as
/sys/class/net/*/statistics) and the protocol counters of /proc/net/snmp. A packet a sandboxed
run sent through the host's stack would show here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sysops.worker.toolkit import netns

SNMP_PATH = Path("/proc/net/snmp")
LOOPBACK = "lo"


@dataclass(frozen=True)
class HostCounters:
    interfaces: dict[str, dict[str, int]]  # name -> {tx_packets, rx_packets, …}
    snmp: dict[str, int]  # "Icmp.InEchos" -> value

    @classmethod
    def read(cls) -> HostCounters:
        return cls(interfaces=netns.interface_counters(), snmp=_snmp())

    def tx_delta(self, later: HostCounters) -> dict[str, int]:
        """Packets each host interface transmitted between ``self`` and ``later``."""
        return {
            name: counts["tx_packets"] - self.interfaces.get(name, {}).get("tx_packets", 0)
            for name, counts in later.interfaces.items()
        }

    def snmp_delta(self, later: HostCounters, *names: str) -> dict[str, int]:
        return {name: later.snmp.get(name, 0) - self.snmp.get(name, 0) for name in names}


def _snmp() -> dict[str, int]:
    """/proc/net/snmp comes in pairs of lines: "Icmp: InMsgs InErrors …" then the values."""
    counters = {}
    lines = SNMP_PATH.read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        protocol, _, header = names.partition(":")
        for name, value in zip(header.split(), values.partition(":")[2].split(), strict=False):
            counters[f"{protocol}.{name}"] = int(value)
    return counters
