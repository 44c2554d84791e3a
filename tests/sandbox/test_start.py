"""start(): refusing clearly when it cannot sandbox, and the explicit unsandboxed switch."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import pytest

from sysops import sandbox
from sysops.sandbox import cgroups, process, uids

REFUSAL = sandbox.HostReport(
    False, "cannot sandbox: namespaces: No permissions to create new namespace"
)


@pytest.fixture
def host_without_namespaces(monkeypatch):
    monkeypatch.setattr(process, "cached_host_report", lambda: REFUSAL)


def test_it_refuses_when_the_host_cannot_sandbox(host_without_namespaces, policy):
    with pytest.raises(sandbox.SandboxRefused, match="No permissions to create new namespace"):
        sandbox.start(policy, sandbox.worker_command(policy))


def test_it_runs_unsandboxed_only_when_asked(host_without_namespaces, policy, run_worker):
    run = run_worker(replace(policy, unsandboxed=True), {"case": "read_secret"})

    assert not run.outcome.sandboxed
    assert any(note.startswith("UNSANDBOXED") for note in run.outcome.notes)
    # Still never as root: the dedicated uid cannot read the host's /etc/shadow.
    assert run.errno_names() == {"read /etc/shadow": "EACCES"}


@pytest.fixture
def host_without_cgroups(monkeypatch):
    support = cgroups.CgroupSupport(None, {}, "no cgroup v1 memory, pids or cpu controller")
    monkeypatch.setattr(process, "cached_cgroup_support", lambda: support)


def test_it_refuses_a_run_without_its_memory_pids_and_cpu_cgroup(
    can_sandbox, host_without_cgroups, policy
):
    with pytest.raises(
        sandbox.SandboxRefused,
        match="no memory, pids and cpu cgroup for the run: no cgroup v1 memory, pids or cpu",
    ):
        sandbox.start(policy, sandbox.worker_command(policy))


def test_it_runs_without_cgroups_only_when_asked_and_says_so(
    host_without_cgroups, policy, run_worker
):
    run = run_worker(replace(policy, allow_unbounded=True), {"case": "sleep", "sleep_s": 0})

    assert run.outcome.describe() == "exited with status 0"
    assert not run.outcome.bounded
    assert run.outcome.notes == [
        "UNBOUNDED: no memory, pids and cpu cgroup for the run: "
        "no cgroup v1 memory, pids or cpu controller"
    ]


def test_it_refuses_an_interpreter_the_sandbox_cannot_see(can_sandbox, policy):
    with pytest.raises(sandbox.SandboxRefused, match="not visible inside the sandbox"):
        sandbox.start(replace(policy, python="/opt/python/bin/python3"), ["true"])


@pytest.mark.skipif(not uids.caller_is_root(), reason="only a root caller switches uid")
def test_it_refuses_code_the_sandbox_uid_cannot_read(can_sandbox, policy, tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "code").mkdir()

    with pytest.raises(sandbox.SandboxRefused, match="not readable by sandbox uid"):
        sandbox.start(replace(policy, code_dir=private / "code"), ["true"])


@pytest.mark.skipif(not uids.caller_is_root(), reason="only a root caller switches uid")
def test_it_refuses_a_uid_that_still_runs_something(can_sandbox, policy):
    with uids.lease_uid() as lease:
        squatter = subprocess.Popen(
            ["sleep", "30"], user=lease.uid, group=lease.uid, extra_groups=[]
        )
        try:
            with pytest.raises(
                sandbox.SandboxRefused, match=f"uid {lease.uid} still has processes"
            ):
                sandbox.start(
                    replace(policy, sandbox_uid=lease.uid), sandbox.worker_command(policy)
                )
        finally:
            squatter.kill()
            squatter.wait()


@pytest.mark.skipif(not uids.caller_is_root(), reason="an unprivileged caller's limits are capped")
def test_it_names_the_set_up_step_that_failed(can_sandbox, policy):
    with pytest.raises(sandbox.SandboxRefused, match="setrlimit: not allowed to raise"):
        sandbox.start(replace(policy, nofile=10**8), sandbox.worker_command(policy))
