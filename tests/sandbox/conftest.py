"""Fixtures for running the real worker in the real sandbox. No Django: these tests exercise the
sandbox layer the way the runner does, without the web side."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sysops import sandbox
from sysops.sandbox import cgroups, uids
from sysops.sandbox.host import cached_host_report

HOSTILE_PROBE = "sysops.experiments.hostile.probe"
# Run ids far from any a development database would hand out; each test gets its own uid.
RUN_IDS = itertools.count(47_000)
TEST_WALL_S = 20.0


@dataclass
class SandboxRun:
    proc: sandbox.SandboxProcess
    outcome: sandbox.Outcome
    events: list[dict[str, Any]]
    stderr: str

    def rows(self) -> dict[str, dict[str, Any]]:
        """Result rows by metric."""
        return {
            row["metric"]: row for e in self.events if e["type"] == "result" for row in e["rows"]
        }

    def errno_names(self) -> dict[str, str]:
        return {metric: row["note"].split()[0] for metric, row in self.rows().items()}


@pytest.fixture(scope="session", autouse=True)
def subreaper() -> None:
    # As the runner does: orphans of a killed sandbox are reaped by this process.
    sandbox.set_child_subreaper()


@pytest.fixture(scope="session")
def host_report() -> sandbox.HostReport:
    return cached_host_report()


def skip_or_fail_in_ci(reason: str) -> None:
    """A developer's locked-down laptop may skip the hostile suite; CI, which promises that it
    runs, must fail instead of passing with nothing tested."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the sandbox tests, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def can_sandbox(host_report: sandbox.HostReport) -> None:
    if not host_report.can_sandbox:
        skip_or_fail_in_ci(f"this host cannot sandbox: {host_report.reason}")


@pytest.fixture(scope="session")
def has_cgroups(host_report: sandbox.HostReport) -> None:
    check = host_report.check("cgroups")
    if check is None or not check.ok:
        skip_or_fail_in_ci(f"no cgroup limits here: {check.detail if check else 'not probed'}")


@pytest.fixture(scope="session")
def code_dir() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="sysops-test-code-"))
    parent.chmod(0o755)
    staged = parent / "code"
    sandbox.stage_code(staged)
    yield staged
    shutil.rmtree(parent)


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A fresh directory another uid can reach (pytest's tmp_path is under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="sysops-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def policy(code_dir: Path, host_report: sandbox.HostReport) -> sandbox.Policy:
    # Small limits keep the module fast on two cores. Where the host cannot make the run's
    # cgroup, the development switch (the tests of the cgroup limits skip: has_cgroups).
    cgroups_check = host_report.check("cgroups")
    unbounded = cgroups_check is not None and not cgroups_check.ok
    return sandbox.Policy(code_dir=code_dir, wall_s=TEST_WALL_S, cpu_s=2, allow_unbounded=unbounded)


@pytest.fixture
def run_worker(can_sandbox: None, tmp_path: Path) -> Iterator[Callable[..., SandboxRun]]:
    """run_worker(policy, params, probe=HOSTILE_PROBE, wait=True) -> SandboxRun.

    Starts the real worker through sandbox.start(), waits until exit or policy.wall_s, and
    cleans up. Afterwards checks, independently of cleanup(), that no process of the run's uid
    and no sysops cgroup is left.
    """
    started: list[sandbox.SandboxProcess] = []

    def run(
        policy: sandbox.Policy,
        params: Mapping[str, Any],
        *,
        probe: str = HOSTILE_PROBE,
        until: Callable[[sandbox.SandboxProcess], object] | None = None,
    ) -> SandboxRun:
        # Files rather than pipes: nothing to drain while the worker runs, and a child the
        # worker forked can still append to the same open file description.
        events_file = (tmp_path / f"events-{len(started)}").open("w+b")
        stderr_file = (tmp_path / f"stderr-{len(started)}").open("w+b")
        with events_file, stderr_file:
            proc = sandbox.start(
                policy,
                sandbox.worker_command(policy),
                pass_fds=(events_file.fileno(),),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr_file,
                run_id=next(RUN_IDS),
            )
            started.append(proc)
            assert proc.stdin is not None
            job = {"probe": probe, "params": dict(params), "events_fd": events_file.fileno()}
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
            (until or sandbox.SandboxProcess.wait_until_deadline)(proc)
            outcome = proc.outcome()
            proc.cleanup()
            events_file.seek(0)
            events = [json.loads(line) for line in events_file.read().splitlines()]
            stderr_file.seek(0)
            stderr = stderr_file.read().decode(errors="replace")
        return SandboxRun(proc, outcome, events, stderr)

    yield run
    for proc in started:
        proc.kill()
        proc.cleanup()
        assert uids.processes_of_uid(proc.uid) == {}, f"processes of uid {proc.uid} left"
    assert leftover_cgroups() == []


def leftover_cgroups() -> list[Path]:
    """This process's run cgroups still present (names end in ``-<creator pid>-<n>``; other
    checkouts on the host have theirs)."""
    support = cgroups.detect()
    return sorted(
        path
        for parent in support.parents.values()
        for path in parent.glob(cgroups.run_cgroup_glob(creator_pid=os.getpid()))
        if path.is_dir()
    )
