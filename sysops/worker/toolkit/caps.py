"""Capabilities of this process: read from /proc/self/status, dropped with capset(2).

Lowering one's own capability sets needs no privilege (raising them does), so a probe can show
what a call does without a capability by dropping it in a forked child, uid unchanged.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from sysops.worker.toolkit.libc import check, libc

STATUS_PATH = Path("/proc/self/status")
LINUX_CAPABILITY_VERSION_3 = 0x20080522  # <linux/capability.h>: two 32-bit words per set
CAPABILITY_WORDS = 2
# <linux/capability.h> numbers of the capabilities experiments talk about.
CAPABILITIES = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_RESOURCE": 24,
}
SETS = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capability_sets() -> dict[str, int]:
    """``{"CapEff": mask, ...}`` of this process, from /proc/self/status."""
    sets = {}
    for line in STATUS_PATH.read_text().splitlines():
        name, _, value = line.partition(":")
        if name in SETS:
            sets[name] = int(value.strip(), 16)
    return sets


def names(mask: int) -> list[str]:
    """The capabilities in ``mask`` by name (``cap_<n>`` for those not listed above)."""
    by_number = {number: name for name, number in CAPABILITIES.items()}
    return [by_number.get(bit, f"cap_{bit}") for bit in range(64) if mask >> bit & 1]


def has(capability: str) -> bool:
    """True when ``capability`` is in this process's effective set."""
    return bool(capability_sets().get("CapEff", 0) >> CAPABILITIES[capability] & 1)


def drop(capability: str) -> None:
    """Remove ``capability`` from this thread's effective, permitted and inheritable sets (and,
    by the kernel's rule, the ambient set): for good, since permitted cannot grow back."""
    bit = CAPABILITIES[capability]
    header = _Header(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * CAPABILITY_WORDS)()
    check(libc.capget(ctypes.byref(header), data), "capget")
    word, mask = divmod(bit, 32)
    keep = ~(1 << mask) & 0xFFFFFFFF
    data[word].effective &= keep
    data[word].permitted &= keep
    data[word].inheritable &= keep
    check(libc.capset(ctypes.byref(header), data), f"capset (dropping {capability})")
