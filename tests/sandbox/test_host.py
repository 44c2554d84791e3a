"""probe_host(): what this host allows, checked by running the real thing."""

from __future__ import annotations

import json
import os
from pathlib import Path

from sysops import sandbox

EXPECTED_CHECKS = {
    "bwrap",
    "sandbox uid",
    "namespaces",
    "sandbox self-test",
    "seccomp",
    "net_raw",
    "secrets hidden",
    "cgroups",
    "ptrace",
    "strace",
}


def test_it_reports_every_check_with_a_readable_detail():
    report = sandbox.probe_host()

    assert {check.name for check in report.checks} == EXPECTED_CHECKS
    assert all(check.detail for check in report.checks)
    assert report.reason
    json.dumps(report.to_dict())


def test_it_can_sandbox_only_if_the_required_checks_pass():
    report = sandbox.probe_host()
    required = [report.check(name) for name in ("bwrap", "namespaces", "seccomp")]

    assert report.can_sandbox == all(check is not None and check.ok for check in required)
    if not report.can_sandbox:
        assert report.reason.startswith("cannot sandbox:")


def test_it_proves_the_isolation_it_reports(can_sandbox):
    report = sandbox.probe_host()

    assert "unshare(CLONE_NEWUSER) -> EPERM;" in report.check("seccomp").detail
    assert "socket(AF_VSOCK) -> EAFNOSUPPORT" in report.check("seccomp").detail
    assert report.check("secrets hidden").ok


def test_it_reaps_what_it_started(can_sandbox):
    # The session is a subreaper (conftest), so bubblewrap's orphaned pid 1 comes back to us.
    # Zombies other tests left behind are theirs; the probe must add none.
    before = _own_zombies()
    sandbox.probe_host()
    assert _own_zombies() - before == set()


def _own_zombies() -> set[str]:
    me = str(os.getpid())
    return {
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit()
        and _field(p / "status", "PPid") == me
        and _field(p / "status", "State").startswith("Z")
    }


def _field(status: Path, name: str) -> str:
    try:
        lines = status.read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), "")
