"""Network namespaces a test creates, each joined to the root namespace by a veth pair on a
/30 of 10.231.0.0/16, as separate hosts on this machine would be joined by a network.

A process started with ``prefix()`` runs in the namespace (``ip netns exec``) but keeps this
process's mounts: ``ip netns exec`` remounts /sys for the namespace, which hides the cgroup
hierarchy under /sys/fs/cgroup, and runs there would have no memory, pids and cpu cgroup (the
sandbox itself, bubblewrap with its own namespaces, works inside either way). ``nsenter
--mount`` takes the caller's mount namespace back, as another host would have its own cgroups.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUBNET = ipaddress.ip_network("10.231.0.0/16")
NETNS_DIR = Path("/run/netns")


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass(frozen=True)
class Namespace:
    name: str
    veth_root: str  # the end in the root namespace
    root_address: str  # how the namespace reaches this machine (PostgreSQL, Redis)
    address: str  # the namespace's own end

    def prefix(self, *, cwd: Path) -> list[str]:
        """Run a command in the namespace, with this process's mounts and ``cwd``."""
        return [
            "ip", "netns", "exec", self.name,
            "nsenter", f"--mount=/proc/{os.getpid()}/ns/mnt", f"--wd={cwd}", "--",
        ]  # fmt: skip

    def holds(self, pid: int) -> bool:
        """Whether process ``pid`` lives in this namespace's network."""
        return os.stat(f"/proc/{pid}/ns/net").st_ino == os.stat(NETNS_DIR / self.name).st_ino


def _used_third_octets() -> set[int]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    used = set()
    for word in out.stdout.split():
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_interface(word).ip
            if address in SUBNET:
                used.add(address.packed[2])
    return used


@contextlib.contextmanager
def namespaces(count: int) -> Iterator[list[Namespace]]:
    """``count`` fresh namespaces with unique names and a /24 of 10.231 nobody here uses;
    removed afterwards whatever happened (their processes killed first)."""
    token = secrets.token_hex(3)
    third = next(
        n for n in (secrets.randbelow(256) for _ in range(64)) if n not in _used_third_octets()
    )
    made: list[Namespace] = []
    try:
        for i in range(count):
            base = f"10.231.{third}.{4 * i}"
            ns = Namespace(
                name=f"sysops-{token}-{i}",
                veth_root=f"sph{token}{i}r",
                root_address=str(ipaddress.ip_address(base) + 1),
                address=str(ipaddress.ip_address(base) + 2),
            )
            ip("netns", "add", ns.name)
            made.append(ns)
            ip("link", "add", ns.veth_root, "type", "veth", "peer", "name", f"sph{token}{i}n")
            ip("link", "set", f"sph{token}{i}n", "netns", ns.name)
            ip("addr", "add", f"{ns.root_address}/30", "dev", ns.veth_root)
            ip("link", "set", ns.veth_root, "up")
            ip("-n", ns.name, "addr", "add", f"{ns.address}/30", "dev", f"sph{token}{i}n")
            ip("-n", ns.name, "link", "set", f"sph{token}{i}n", "up")
            ip("-n", ns.name, "link", "set", "lo", "up")
        yield made
    finally:
        for ns in made:
            _remove(ns)


def _remove(ns: Namespace) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True)
    for pid in pids.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    # Deleting one end of a veth pair deletes both.
    subprocess.run(["ip", "link", "del", ns.veth_root], capture_output=True)
    subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)
