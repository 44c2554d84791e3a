"""What this host is, for the ``hello`` event and the dashboard: ``fingerprint() -> dict``.

Timings only mean something next to the kernel, CPU, mitigations, clocksource and
virtualisation they were taken on. Runs both inside the sandbox (where /sys/devices/system/cpu
and the clocksource directory are bind-mounted read-only, and /etc is absent) and in the web
process, so every read is best-effort: a missing or unreadable file gives None, never an
exception. Sandbox side: standard library only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from sysops.worker.markers import harness_call

CPUINFO_PATH = Path("/proc/cpuinfo")
VULNERABILITIES_DIR = Path("/sys/devices/system/cpu/vulnerabilities")
CLOCKSOURCE_DIR = Path("/sys/devices/system/clocksource/clocksource0")
GOVERNOR_PATH = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
DMI_DIR = Path("/sys/class/dmi/id")
XEN_HYPERVISOR_TYPE_PATH = Path("/sys/hypervisor/type")
INIT_CGROUP_PATH = Path("/proc/1/cgroup")
CONTAINER_MARKER_PATHS = (Path("/.dockerenv"), Path("/run/.containerenv"))
CPUINFO_MODEL_KEYS = ("model name", "Processor", "cpu model", "cpu")  # x86, arm, mips, ppc

# DMI vendor / product substrings → hypervisor. Clouds rename their KVM (Amazon EC2, Google).
DMI_HYPERVISORS = (
    ("qemu", "kvm"),
    ("kvm", "kvm"),
    ("amazon ec2", "kvm"),
    ("google", "kvm"),
    ("vmware", "vmware"),
    ("virtualbox", "virtualbox"),
    ("innotek", "virtualbox"),
    ("xen", "xen"),
    ("microsoft corporation", "hyperv"),
    ("parallels", "parallels"),
)
# A paravirtual clocksource on offer names the hypervisor when DMI is hidden (e.g. microVMs).
CLOCKSOURCE_HYPERVISORS = (
    ("kvm-clock", "kvm"),
    ("xen", "xen"),
    ("hyperv_clocksource", "hyperv"),
)
CGROUP_CONTAINER_HINTS = ("docker", "containerd", "kubepods", "libpod", "lxc", "podman")


@harness_call
def fingerprint() -> dict[str, Any]:
    uname = os.uname()
    cpuinfo = _read_text(CPUINFO_PATH)
    return {
        "kernel": {"release": uname.release, "version": uname.version},
        "machine": uname.machine,
        "cpu_model": _cpu_model(cpuinfo),
        "cores": {"online": os.cpu_count(), "usable": _usable_cores()},
        "mitigations": _mitigations(),
        "clocksource": _read_line(CLOCKSOURCE_DIR / "current_clocksource"),
        "clocksources_available": _split(_read_line(CLOCKSOURCE_DIR / "available_clocksource")),
        "governor": _read_line(GOVERNOR_PATH),
        "virtualisation": _virtualisation(cpuinfo),
        "python": {
            "version": ".".join(str(part) for part in sys.version_info[:3]),
            "implementation": sys.implementation.name,
            "executable": sys.executable,
        },
        "hostname": uname.nodename,
    }


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except (OSError, ValueError):
        return None


def _read_line(path: Path) -> str | None:
    text = _read_text(path)
    if text is None:
        return None
    return text.strip() or None


def _split(text: str | None) -> list[str] | None:
    return text.split() if text is not None else None


def _cpuinfo_field(cpuinfo: str | None, key: str) -> str | None:
    for line in (cpuinfo or "").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            return value.strip()
    return None


def _cpu_model(cpuinfo: str | None) -> str | None:
    for key in CPUINFO_MODEL_KEYS:
        value = _cpuinfo_field(cpuinfo, key)
        if value:
            return value
    return None


def _usable_cores() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux, or the call is forbidden
        return None


def _mitigations() -> dict[str, str] | None:
    try:
        entries = sorted(VULNERABILITIES_DIR.iterdir())
    except OSError:
        return None
    return {entry.name: _read_line(entry) or "" for entry in entries}


def _virtualisation(cpuinfo: str | None) -> dict[str, Any]:
    """A short ``kind`` ("kvm", "xen", "vm", "container", "kvm+container", "none", …) and the
    evidence behind it, since every signal here can be hidden or faked."""
    evidence: list[str] = []
    hypervisor: str | None = None

    flags = (_cpuinfo_field(cpuinfo, "flags") or "").split()
    if "hypervisor" in flags:
        evidence.append("cpu flag 'hypervisor' in /proc/cpuinfo")
        hypervisor = "vm"

    dmi = " ".join(
        value
        for value in (_read_line(DMI_DIR / "sys_vendor"), _read_line(DMI_DIR / "product_name"))
        if value
    )
    if dmi:
        evidence.append(f"DMI: {dmi}")
        hypervisor = _first_match(dmi.lower(), DMI_HYPERVISORS) or hypervisor

    xen_type = _read_line(XEN_HYPERVISOR_TYPE_PATH)
    if xen_type:
        evidence.append(f"{XEN_HYPERVISOR_TYPE_PATH}: {xen_type}")
        hypervisor = xen_type

    if hypervisor in (None, "vm"):
        available = _read_line(CLOCKSOURCE_DIR / "available_clocksource") or ""
        from_clocksource = _first_match(available, CLOCKSOURCE_HYPERVISORS)
        if from_clocksource:
            evidence.append(f"paravirtual clocksource available: {available}")
            hypervisor = from_clocksource

    container = _container_evidence()
    evidence.extend(container)

    parts = [hypervisor] if hypervisor else []
    if container:
        parts.append("container")
    return {"kind": "+".join(parts) or "none", "evidence": evidence}


def _first_match(text: str, table: tuple[tuple[str, str], ...]) -> str | None:
    for needle, name in table:
        if needle in text:
            return name
    return None


def _container_evidence() -> list[str]:
    evidence = [f"{path} exists" for path in CONTAINER_MARKER_PATHS if _exists(path)]
    cgroup = _read_text(INIT_CGROUP_PATH) or ""
    hint = next((word for word in CGROUP_CONTAINER_HINTS if word in cgroup), None)
    if hint:
        evidence.append(f"{INIT_CGROUP_PATH} mentions {hint!r}")
    # Lower-case by convention: systemd-nspawn, podman and lxc set it for the container init.
    marker = os.environ.get("container")  # noqa: SIM112
    if marker:
        evidence.append(f"$container={marker}")
    return evidence


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except OSError:
        return False
