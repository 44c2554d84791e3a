"""Traces of real runs: strace around the real sandbox, parsed, filtered, stored and shown."""

import io
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core.management import call_command

from playground.asgi import application
from sysops import sandbox, selectors
from sysops.agent.runner import execute
from sysops.models import Run, TraceChunk
from tests.helpers.locked_down import run_locked_down
from tests.helpers.runs import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def traced_run(experiment, params, mode="full"):
    run = Run.objects.create(
        experiment=experiment, params=params, trace_mode=mode, status=Run.Status.RUNNING
    )
    return execute(run.pk, lambda group, message: None)


def syscalls(run):
    return [e for e in selectors.trace_events(run) if e["kind"] == "syscall"]


def index_of(events, name, predicate=lambda e: True, after=-1):
    for i, event in enumerate(events):
        if i > after and event["name"] == name and predicate(event):
            return i
    raise AssertionError(f"no {name} after #{after}")


def test_it_traces_the_workers_own_calls_in_order_with_the_childs_under_its_pid():
    run = traced_run("workload", {"case": "calls", "count": 0})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.trace["status"] == "done", run.trace
    events = syscalls(run)
    parent = events[0]["pid"]
    mine = [e for e in events if e["pid"] == parent]

    opened = index_of(mine, "openat", lambda e: e["args"][1] == '"/tmp/workload.txt"')
    assert "O_WRONLY|O_CREAT|O_TRUNC" in mine[opened]["args"][2]
    assert mine[opened]["ret"] == "3</tmp/workload.txt>"
    wrote = index_of(mine, "write", lambda e: e["args"][0] == "3</tmp/workload.txt>", opened)
    assert mine[wrote]["args"][1:] == ['"hello sysops\\n"', "13"]
    mapped = index_of(mine, "mmap", lambda e: e["args"][3] == "MAP_PRIVATE|MAP_ANONYMOUS", wrote)
    assert mine[mapped]["args"][1:3] == ["65536", "PROT_READ|PROT_WRITE"]
    unmapped = index_of(mine, "munmap", lambda e: e["args"][0] == mine[mapped]["ret"], mapped)
    refused = index_of(mine, "connect", lambda e: "htons(9)" in e["args"][1], unmapped)
    assert mine[refused]["errno"] == "ECONNREFUSED"
    assert mine[refused]["errmsg"] == "Connection refused"
    forked = index_of(mine, "clone", after=refused)
    waited = index_of(mine, "wait4", after=forked)
    assert "WEXITSTATUS(s) == 7" in mine[waited]["args"][1]

    child = [e for e in events if e["pid"] != parent]
    assert {e["pid"] for e in child} == {child[0]["pid"]}  # one child, under its own pid
    assert [e["name"] for e in child if e["name"] in ("getppid", "openat", "write")] == [
        "getppid",
        "openat",
        "write",
    ]
    assert child[-1]["name"] == "exit_group" and child[-1]["args"] == ["7"]
    # Nothing of the interpreter's start-up or the sandbox's set-up: no execve, no bwrap.
    assert not [e for e in events if e["name"] in ("execve", "pivot_root", "unshare")]
    observer = run.trace["observer"]
    assert observer["traced_work_s"] > 0 and observer["untraced_work_s"] > 0


def strace_c_count(job, name):
    """What ``strace -c -f`` counts for the same work, run outside the sandbox."""
    repo = Path(sandbox.__file__).parents[2]
    done = subprocess.run(
        [
            "strace",
            "-c",
            "-f",
            "-o",
            "/dev/stdout",
            sys.executable,
            "-S",
            "-m",
            "sysops.worker",
        ],
        input=json.dumps({**job, "events_fd": 1}).encode(),
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        check=True,
        env={"PYTHONPATH": str(repo), "PATH": os.environ["PATH"]},
    )
    for line in done.stdout.decode(errors="replace").splitlines():
        fields = line.split()
        if fields and fields[-1] == name:
            return int(fields[3])
    raise AssertionError(f"strace -c counted no {name}")


@pytest.mark.slow
def test_a_run_of_200k_traced_syscalls_persists_every_one():
    count = 200_000
    run = traced_run("workload", {"case": "getppid_loop", "count": count})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.trace["status"] == "done", run.trace
    stored = Counter(e["name"] for e in selectors.trace_events(run))
    job = {
        "probe": "sysops.experiments.workload.probe",
        "params": {"case": "getppid_loop", "count": count},
    }
    assert stored["getppid"] == strace_c_count(job, "getppid") == count
    assert sum(TraceChunk.objects.filter(run=run).values_list("count", flat=True)) == sum(
        stored.values()
    )
    summary = {row["name"]: row for row in run.trace["summary"]["rows"]}
    assert summary["getppid"]["calls"] == count
    assert run.trace["events"] == sum(stored.values())


@pytest.mark.asyncio
async def test_a_page_opened_afterwards_gets_the_full_summary_and_the_tail(settings):
    from asgiref.sync import sync_to_async

    settings.SYSOPS_EMBEDDED_AGENT = False  # the test ran the run itself
    run = await sync_to_async(traced_run)("workload", {"case": "calls", "count": 0})
    ws = WebsocketCommunicator(
        application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"http://127.0.0.1:8000")]
    )
    assert (await ws.connect())[0]
    await ws.receive_from()  # HTML
    await ws.receive_from()  # samples snapshot
    trace = json.loads(await ws.receive_from())
    assert trace["kind"] == "trace" and trace["snapshot"]
    assert trace["state"]["status"] == "done"
    assert len(trace["events"]) == min(run.trace["events"], selectors.TRACE_LINES_SHOWN)
    assert trace["summary"]["total"]["calls"] == run.trace["summary"]["total"]["calls"]
    await ws.disconnect()


def download(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith("attachment")

    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


def test_downloads_hold_every_event(client):
    run = traced_run("workload", {"case": "calls", "count": 0})
    total = run.trace["events"]
    text = download(client, f"/runs/{run.pk}/trace/strace/").decode()
    assert len(text.splitlines()) == total
    assert re.search(r"connect\(3<TCP:\[\d+\]>, .*htons\(9\).* = -1 ECONNREFUSED", text)
    ndjson = download(client, f"/runs/{run.pk}/trace/ndjson/")
    assert len(ndjson.splitlines()) == total
    perfetto = json.loads(download(client, f"/runs/{run.pk}/trace/perfetto/"))
    slices = [e for e in perfetto["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == sum(1 for e in selectors.trace_events(run) if e["kind"] == "syscall")
    assert len({e["pid"] for e in slices}) == 2  # the worker and its child: a track each
    csv = download(client, f"/runs/{run.pk}/trace/summary/").decode().splitlines()
    header = csv[0].split(",")
    assert "calls" in header and "errors" in header
    names = {line.split(",")[header.index("syscall")] for line in csv[1:]}
    assert {"openat", "write", "connect", "clone", "getppid"} <= names
    assert client.get(f"/runs/{run.pk}/trace/bogus/").status_code == 404


def test_headless_traced_run_prints_the_summary():
    out = io.StringIO()
    call_command(
        "run_experiment",
        "workload",
        "--param",
        "case=calls",
        "--trace",
        "sampled",
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    assert "% time" in text and " connect" in text and " total" in text
    assert "Observer effect: the same work took" in text


def test_where_ptrace_is_forbidden_the_run_runs_and_says_why_there_is_no_trace():
    argv = [sys.executable, "manage.py", "run_experiment", "syscall-cost", "--trace", "full"]
    argv += ["--param", "iterations=1000", "--param", "repetitions=5"]
    done = run_locked_down("ptrace", argv, database_url=database_url())
    assert done.returncode == 0, done.stderr
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED
    assert run.trace["status"] == "unavailable"
    assert "no trace on this host" in run.trace["reason"]
    assert "strace" in run.trace["reason"]
    assert "trace unavailable: no trace on this host" in done.stdout


def test_fixed_time_work_shows_its_observer_effect_as_a_rate():
    run = traced_run(
        "epoll-echo", {"clients": 2, "message_bytes": 64, "duration_s": 0.5}, mode="sampled"
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    observer = run.trace["observer"]
    assert observer["metric"] == "requests/s"
    assert observer["traced_rate"] < observer["untraced_rate"]
    assert observer["slowdown"] == pytest.approx(
        observer["untraced_rate"] / observer["traced_rate"]
    )
    # The server and the clients are separate processes: each under its own pid.
    assert len({e["pid"] for e in syscalls(run)}) == 2
