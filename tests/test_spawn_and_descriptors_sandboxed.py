"""process-spawn and descriptors for real, in the real sandbox, through the runner and the
headless command: physical facts with wide margins, never tight timings."""

import io
import json

import pytest
from django.core.management import call_command

from sysops import selectors
from sysops.agent.runner import execute
from sysops.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def run_now(experiment, params, trace_mode=Run.TraceMode.OFF):
    run = Run.objects.create(
        experiment=experiment, params=params, trace_mode=trace_mode, status=Run.Status.RUNNING
    )
    return execute(run.pk, lambda group, message: None)


def spawn_params(methods, sizes_mib, repetitions, warmup):
    return {
        "methods": methods,
        "parent_sizes_mib": sizes_mib,
        "target": "/bin/true",
        "repetitions": repetitions,
        "warmup": warmup,
    }


def rows_of(run):
    return {row["metric"]: row for row in run.results}


def test_fork_from_a_256_mib_parent_is_slower_and_posix_spawn_is_not():
    run = run_now("process-spawn", spawn_params(["fork_exit", "posix_spawn"], [0, 256], 12, 2))
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert not run.unsandboxed
    rows = rows_of(run)

    def reaped(label, mib):
        return rows[f"{label} from a {mib} MiB parent: reaped"]["value"]

    fork_growth_us = reaped("fork + _exit", 256) - reaped("fork + _exit", 0)
    assert fork_growth_us > 1_000
    assert reaped("fork + _exit", 256) > 2 * reaped("fork + _exit", 0)
    assert reaped("posix_spawn", 256) - reaped("posix_spawn", 0) < fork_growth_us / 4
    fork_slope = rows["fork + _exit: cost per MiB of parent"]["value"]
    assert fork_slope > 4
    assert rows["posix_spawn: cost per MiB of parent"]["value"] < fork_slope / 4
    # The run's address-space limit was raised for the 256 MiB parent (1 GiB + 256 MiB).
    assert rows["RLIMIT_AS (soft, bytes)"]["value"] == (1 << 30) + (256 << 20)


def test_a_sampled_trace_shows_clone_execve_and_wait4_under_their_own_pids():
    params = spawn_params(["fork_execve", "posix_spawn"], [0, 16], 3, 0)
    run = run_now("process-spawn", params, trace_mode=Run.TraceMode.SAMPLED)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.trace["status"] == "done", run.trace
    events = [e for e in selectors.trace_events(run) if e["kind"] == "syscall"]
    parent = events[0]["pid"]
    # The sandbox answers clone3 with ENOSYS (its seccomp filter cannot inspect clone3's flags),
    # and glibc falls back to clone.
    spawned = [
        e
        for e in events
        if e["name"] in ("clone", "clone3") and e["pid"] == parent and not e["errno"]
    ]
    # Sampled: 2 sizes x 2 cycles x 2 methods, one successful clone each.
    assert len(spawned) >= 8
    execs = [e for e in events if e["name"] == "execve"]
    assert len(execs) >= 8
    assert all(e["pid"] != parent for e in execs)
    # Each child under its own pid (strace shows host pids; clone returns the sandbox's own).
    assert len({e["pid"] for e in execs}) == len(execs)
    assert all('"/bin/true"' in e["args"][0] for e in execs)
    assert len([e for e in events if e["name"] == "wait4" and e["pid"] == parent]) >= 8


def test_open_until_emfile_stops_at_a_raised_limit_with_emfile():
    # 2048 is above the sandbox's default 1024: the experiment's limits raise the hard limit.
    run = run_now("descriptors", {"scenario": "emfile", "count": 1, "nofile": 2048})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    rows = rows_of(run)
    assert rows["open() at the limit"]["errno_name"] == "EMFILE"
    assert rows["descriptors open when refused"]["value"] == 2048
    assert rows["highest descriptor number"]["value"] == 2047
    assert rows["RLIMIT_NOFILE (soft, hard)"]["value"] == "2048, 2048"


def test_a_sandboxed_child_sees_the_fd_without_cloexec_only():
    run = run_now("descriptors", {"scenario": "inherit", "count": 1, "nofile": 1024})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    rows = rows_of(run)
    assert rows["child sees the fd opened without O_CLOEXEC"]["seen"] is True
    assert rows["child sees the fd opened with O_CLOEXEC"]["seen"] is False


def test_the_headless_command_prints_the_rows_as_json():
    out = io.StringIO()
    call_command(
        "run_experiment",
        "descriptors",
        "--param",
        "scenario=dup",
        "--json",
        stdout=out,
        stderr=io.StringIO(),
    )
    printed = json.loads(out.getvalue())
    run = Run.objects.get()
    assert printed["run"] == run.pk and printed["status"] == Run.Status.SUCCEEDED
    assert printed["experiment"] == "descriptors"
    assert printed["params"]["scenario"] == "dup"
    assert printed["results"] == run.results
    rows = {row["metric"]: row for row in printed["results"]}
    assert rows["dup2(a, 100)"]["value"] == 100 and rows["dup2(a, 100)"]["unit"] == "fd"
    table = rows["descriptor table after the dups"]["detail"]
    assert table["panel"] == "fd_table" and {0, 1, 2, 100} <= {e["fd"] for e in table["fds"]}
    assert printed["host"]["kernel"]
