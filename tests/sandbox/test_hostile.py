"""The hostile probe, run for real: the real worker in the real sandbox, one attack per test.

Each test states what the attack must get (an errno, a limit, a signal); the run_worker fixture
then checks that nothing of the run is left on the host.
"""

from __future__ import annotations

import os
import platform
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from sysops import sandbox
from sysops.sandbox import uids

REPO_DIR = Path(__file__).resolve().parents[2]
MIB = 1 << 20


def test_it_contains_a_fork_bomb_with_rlimit_nproc(run_worker, policy):
    run = run_worker(replace(policy, nproc=16, pids_max=64), {"case": "fork_bomb"})

    assert run.errno_names() == {"fork until refused": "EAGAIN"}
    assert "RLIMIT_NPROC 16 processes" in run.outcome.limits_hit
    assert "RLIMIT_NPROC" in run.outcome.describe()


def test_it_contains_a_fork_bomb_with_the_pids_cgroup(run_worker, policy, has_cgroups):
    run = run_worker(replace(policy, nproc=64, pids_max=20), {"case": "fork_bomb"})

    assert run.errno_names() == {"fork until refused": "EAGAIN"}
    assert run.outcome.limits_hit == ["cgroup pids limit (20)"]


def test_it_oom_kills_a_memory_hog_at_the_cgroup_limit(run_worker, policy, has_cgroups):
    run = run_worker(replace(policy, memory_bytes=96 * MIB), {"case": "memory_hog"})

    assert run.outcome.signal == "SIGKILL"
    assert run.outcome.limits_hit == ["cgroup memory OOM kill (limit 96 MiB)"]
    assert run.outcome.describe() == "killed by SIGKILL: cgroup memory OOM kill (limit 96 MiB)"


def test_it_oom_kills_memfds_that_rlimit_as_does_not_see(run_worker, policy, has_cgroups):
    run = run_worker(
        replace(policy, memory_bytes=96 * MIB, address_space_bytes=1 << 30), {"case": "memfd_hog"}
    )

    # 2 GiB in memfds under a 1 GiB RLIMIT_AS: only the memory cgroup stops it.
    assert run.outcome.bounded
    assert run.outcome.limits_hit == ["cgroup memory OOM kill (limit 96 MiB)"]
    assert "fill memfds" not in run.rows()


def test_it_bounds_the_cores_a_run_may_use(run_worker, policy, has_cgroups):
    run = run_worker(replace(policy, cpus=0.25, cpu_s=10), {"case": "spin_cores", "sleep_s": 3})

    # Several processes spinning for 3 s of wall time get a quarter of one core between them
    # (unbounded, they would take every core: 2.0 here). Wide margin for a loaded host.
    assert run.outcome.exit_code == 0, run.stderr
    assert run.rows()["cores used"]["value"] < 0.45
    assert run.outcome.cpu_s is not None and run.outcome.cpu_s < 0.45 * 3 + 0.5


def test_it_refuses_memory_beyond_rlimit_as(run_worker, policy):
    run = run_worker(replace(policy, address_space_bytes=192 * MIB), {"case": "memory_hog"})

    assert run.errno_names() == {"allocate and touch memory": "ENOMEM"}
    assert run.outcome.exit_code == 0


def test_it_stops_a_busy_loop_at_rlimit_cpu(run_worker, policy):
    run = run_worker(replace(policy, cpu_s=1), {"case": "busy_loop"})

    assert run.outcome.signal == "SIGXCPU"
    assert run.outcome.limits_hit == ["RLIMIT_CPU 1 s"]
    assert run.rows() == {}


def test_it_kills_a_sleeper_the_caller_gives_up_on(run_worker, policy):
    def wait_then_kill(proc: sandbox.SandboxProcess) -> None:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
        proc.kill()
        proc.wait()

    run = run_worker(policy, {"case": "sleep", "sleep_s": 30}, until=wait_then_kill)

    assert run.outcome.signal == "SIGKILL"
    assert run.outcome.killed_by_caller
    assert run.outcome.describe() == "killed by SIGKILL (stopped by the caller)"
    assert uids.processes_of_uid(run.proc.uid) == {}


def test_it_kills_a_sleeper_at_the_wall_clock_limit(run_worker, policy):
    run = run_worker(replace(policy, wall_s=0.5), {"case": "sleep", "sleep_s": 30})

    assert run.outcome.limits_hit == ["wall clock 0.5 s"]
    assert run.outcome.describe() == "killed by SIGKILL: wall clock 0.5 s"


def test_it_stops_a_big_write_at_rlimit_fsize(run_worker, policy):
    run = run_worker(replace(policy, file_size_bytes=8 * MIB), {"case": "big_write"})

    assert run.errno_names() == {"write 10 GB to /tmp/file": "EFBIG"}


def test_it_stops_a_big_write_when_the_tmpfs_is_full(run_worker, policy):
    run = run_worker(replace(policy, tmpfs_bytes=4 * MIB), {"case": "big_write"})

    assert run.errno_names() == {"write 10 GB to /tmp/file": "ENOSPC"}


def test_it_has_no_route_off_the_machine(run_worker, policy):
    run = run_worker(policy, {"case": "connect_out"})

    assert run.errno_names() == {
        "connect 1.1.1.1:80": "ENETUNREACH",
        "connect 10.0.0.1:80": "ENETUNREACH",
    }


def test_it_hides_secrets_and_the_repository(run_worker, policy):
    # A stand-in for the web app's database, in the checkout the code was staged from.
    database = REPO_DIR / "tests" / "sandbox" / f".db-{uuid.uuid4().hex}.sqlite3"
    database.write_bytes(b"SQLite format 3\0")
    try:
        run = run_worker(policy, {"case": "read_secret", "path": str(database)})
    finally:
        database.unlink()

    assert run.errno_names() == {"read /etc/shadow": "ENOENT", f"read {database}": "ENOENT"}


def test_it_denies_mount(run_worker, policy):
    run = run_worker(policy, {"case": "mount"})

    assert run.errno_names() == {"mount tmpfs on /tmp": "EPERM"}


def test_it_denies_new_namespaces(run_worker, policy):
    run = run_worker(policy, {"case": "unshare"})

    assert run.errno_names() == {
        "unshare(CLONE_NEWUSER)": "EPERM",
        "unshare(CLONE_NEWNS)": "EPERM",
        "unshare(CLONE_NEWNET)": "EPERM",
        "clone(CLONE_NEWUSER)": "EPERM",
        "clone3": "ENOSYS",
    }


def test_it_denies_ptrace(run_worker, policy):
    run = run_worker(policy, {"case": "ptrace"})

    assert run.errno_names() == {
        "ptrace(PTRACE_TRACEME)": "EPERM",
        "ptrace(PTRACE_ATTACH, child)": "EPERM",
    }


def test_it_denies_tiocsti_but_not_other_ioctls(run_worker, policy):
    run = run_worker(policy, {"case": "tiocsti"})

    assert run.errno_names() == {"ioctl(0, TIOCSTI)": "EPERM", "ioctl(0, FIONREAD)": "ok"}


def test_it_denies_io_uring(run_worker, policy):
    run = run_worker(policy, {"case": "io_uring"})

    assert run.errno_names() == {"io_uring_setup": "EPERM"}


def test_it_denies_socket_families_the_network_namespace_does_not_confine(run_worker, policy):
    run = run_worker(policy, {"case": "socket_families"})

    denied = {"AF_NETLINK", "AF_PACKET", "AF_VSOCK", "AF_BLUETOOTH"}
    assert run.errno_names() == {
        **{
            f"{call}({family})": "EAFNOSUPPORT"
            for family in denied
            for call in ("socket", "socketpair")
        },
        "socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)": "ok",
        "socket(AF_INET6, SOCK_STREAM)": "ok",
        "socketpair(AF_UNIX)": "ok",
    }


def test_it_denies_legacy_personalities_and_modify_ldt(run_worker, policy):
    run = run_worker(policy, {"case": "legacy_abi"})

    expected = {
        "personality(query)": "ok",
        "personality(PER_LINUX)": "ok",
        "personality(READ_IMPLIES_EXEC)": "EPERM",
    }
    if platform.machine() == "x86_64":
        expected["modify_ldt(read)"] = "EPERM"
    assert run.errno_names() == expected


def test_it_shows_little_of_the_host(run_worker, policy):
    run = run_worker(policy, {"case": "host_view"})

    rows = run.rows()
    assert rows["hostname"]["note"] == "sandbox"
    assert rows["/usr/local"]["value"] == 0  # the host's pip and npm configuration live there
    assert rows["write /usr/local/planted"]["note"].split()[0] == "EROFS"
    for path in ("/proc/cmdline", "/proc/sched_debug", "/proc/timer_list"):
        # Masked (a device node on procfs, which is nodev: EACCES), or absent on this kernel.
        seen = rows[path]
        assert seen["note"] in ("EACCES", "ENOENT") or seen["value"] == 0, (path, seen)


def test_it_keeps_kill_minus_one_inside_the_sandbox(run_worker, policy):
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        run = run_worker(policy, {"case": "kill_all"})

        # kill(-1) did run and took the worker with it, and only the worker.
        assert run.outcome.signal == "SIGKILL"
        assert not run.outcome.killed_by_caller
        assert bystander.poll() is None
        os.kill(bystander.pid, 0)
    finally:
        bystander.kill()
        bystander.wait()
    assert "worker survived kill(-1, SIGKILL)" not in run.rows()


def test_it_runs_as_an_unprivileged_host_uid(run_worker, policy):
    run = run_worker(policy, {"case": "sleep", "sleep_s": 0})

    assert run.outcome.describe() == "exited with status 0"
    assert run.proc.uid != 0
    if uids.caller_is_root():
        assert run.proc.uid in uids.configured_range()
