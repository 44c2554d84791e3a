"""The trace is the experiment's: real traced runs of known work, through the real sandbox."""

import errno
from collections import Counter

import pytest

from sysops import selectors
from sysops.models import Run
from tests.test_tracing_pipeline import traced_run

pytestmark = pytest.mark.django_db(transaction=True)
# EIO into a read that would succeed.
EIO_INTO_READ = {"inject_syscall": "read", "inject_errno": "EIO"}


def fault_run(experiment, params, mode):
    """A run with a fault pass, and its rows about the fault by layer."""
    run = traced_run(experiment, {**params, **EIO_INTO_READ}, mode=mode)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    return run, {row["layer"]: row for row in run.results if "injected" in row["metric"]}


def experiment_calls(run):
    return [
        e for e in selectors.trace_events(run) if e["kind"] == "syscall" and not e.get("harness")
    ]


def test_a_getppid_loop_trace_holds_the_loop_and_nothing_of_the_harness():
    count = 300
    run = traced_run("workload", {"case": "getppid_loop", "count": count})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.trace["status"] == "done", run.trace
    calls = Counter(e["name"] for e in experiment_calls(run))
    assert calls == {"getppid": count}, calls
    summary = run.trace["summary"]
    assert summary["total"] == {**summary["total"], "calls": count, "errors": 0}


def test_a_syscall_cost_write_trace_has_no_fingerprint_import_or_event_pipe_calls():
    params = {"call": "write", "layers": ["python", "native"], "iterations": 1000}
    run = traced_run("syscall-cost", {**params, "repetitions": 5, "warmup": 1})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.trace["status"] == "done", run.trace
    events = selectors.trace_events(run)
    calls = experiment_calls(run)
    # Every write of the workload goes to /dev/null: 1 check + 6 repetitions of 1,000 per layer.
    writes = [e for e in calls if e["name"] == "write"]
    assert len(writes) == 2 * (1 + 1000 * 6)
    assert {e["fd_paths"].get("0") for e in writes} == {"/dev/null"}
    assert not [e for e in calls if e["name"] == "ioctl"]
    assert not [e for e in calls if "vulnerabilities" in " ".join(e["args"])]
    assert not [e for e in calls if e.get("errno")]
    assert run.trace["summary"]["total"]["errors"] == 0
    assert run.trace["expected_events"] == len(writes) - 2  # the ETA's count: the timed calls
    # The harness's calls are kept, marked, for the "show harness calls" switch.
    harness = [e for e in events if e.get("harness")]
    assert [e for e in harness if "pipe:" in (e["fd_paths"].get("0") or "")]
    assert run.trace["summary"]["harness_calls"] == len(
        [e for e in harness if e["kind"] == "syscall" and e["ret"] is not None]
    )


def test_a_workload_that_makes_failing_calls_has_exactly_those_errors():
    run = traced_run("workload", {"case": "calls", "count": 0})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    failed = [(e["name"], e["errno"]) for e in experiment_calls(run) if e.get("errno")]
    # The refused connect is the workload's only failing call.
    assert failed == [("connect", "ECONNREFUSED")]
    assert run.trace["summary"]["total"]["errors"] == 1


def test_a_traced_class_stores_only_that_class():
    run = traced_run("workload", {"case": "calls", "count": 0, "trace_set": "%network"})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.trace["status"] == "done", run.trace
    names = Counter(e["name"] for e in selectors.trace_events(run) if e["kind"] == "syscall")
    assert set(names) == {"socket", "connect"}, names
    assert run.trace["summary"]["total"]["errors"] == 1  # the refused connect


def test_a_traced_list_stores_only_those_calls_of_the_parent_and_its_child():
    run = traced_run("workload", {"case": "calls", "count": 0, "trace_set": "getppid,openat"})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    events = [e for e in selectors.trace_events(run) if e["kind"] == "syscall"]
    opened = [e["args"][1] for e in events if e["name"] == "openat"]
    assert opened == ['"/tmp/workload.txt"', '"/tmp/child.txt"']
    assert [e["name"] for e in events if e["name"] != "openat"] == ["getppid"]
    assert not [e for e in events if e["name"] in ("access", "faccessat", "faccessat2")]


def test_an_injected_eio_on_the_third_read_shows_at_every_layer_and_the_run_reports_it():
    params = {
        "call": "read",
        "layers": ["python", "ctypes", "native"],
        "iterations": 1000,
        "repetitions": 5,
        "warmup": 0,
        "inject_when": 3,
    }
    run, faulted = fault_run("syscall-cost", params, mode="off")
    assert set(faulted) == {"python", "ctypes", "native", "strace"}, run.results
    for layer in ("python", "ctypes", "native"):
        row = faulted[layer]
        assert row["value"] == errno.EIO and row["unit"] == "errno", row
        assert "at call 3" in row["note"] and "Calls: ok ok EIO ok ok." in row["note"], row
    assert "OSError: [Errno 5]" in faulted["python"]["note"]
    assert faulted["strace"]["value"] == 3  # one injected read per layer's process
    # The measured figures are untouched: every timed read succeeded.
    timed = [row for row in run.results if row.get("dist")]
    assert {row["layer"] for row in timed} == {"python", "ctypes", "native"}


def test_errno_boundary_shows_an_injected_eio_as_each_layer_gets_it():
    params = {
        "cases": ["ebadf"],
        "layers": ["raw", "libc", "python"],
        "iterations": 10,
        "repetitions": 1,
        "warmup": 0,
        "interrupt_ms": 1,
        "interruptions": 1,
        "inject_when": 2,
    }
    _, faulted = fault_run("errno-boundary", params, mode="sampled")
    assert {layer: row["value"] for layer, row in faulted.items()} == {
        "raw": errno.EIO,
        "libc": errno.EIO,
        "python": errno.EIO,
        "strace": 3,
    }
    assert "raw read returned -5" in faulted["raw"]["note"]
    assert "libc read returned -1" in faulted["libc"]["note"]
    assert "Calls: ok EIO ok ok." in faulted["python"]["note"]
