"""The trace is the experiment's: real traced runs of known work, through the real sandbox."""

from collections import Counter

import pytest

from sysops import selectors
from sysops.agent.runner import execute
from sysops.models import Run

pytestmark = pytest.mark.django_db(transaction=True)


def traced_run(experiment, params, mode="full"):
    run = Run.objects.create(
        experiment=experiment, params=params, trace_mode=mode, status=Run.Status.RUNNING
    )
    return execute(run.pk, lambda group, message: None)


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
