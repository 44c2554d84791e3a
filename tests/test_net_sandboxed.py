"""tcp and socket-options for real, in the real sandbox, through the runner: in the sandbox's
own network namespace, whose only interface is its loopback."""

from __future__ import annotations

import errno
import io
import json

import pytest
from django.core.management import call_command

from sysops.agent.runner import execute
from sysops.experiments import registry
from sysops.models import Run, SampleChunk, TraceChunk
from sysops.worker.toolkit import netns

from .test_experiments_sandboxed import run_now

pytestmark = pytest.mark.django_db(transaction=True)


def _rows(run: Run) -> dict:
    return {row["metric"]: row for row in run.results}


def _assert_charted(run: Run) -> None:
    """Every sample belongs to a series one of the experiment's charts draws, and every
    drawn series got samples."""
    stored = {s[0] for c in SampleChunk.objects.filter(run=run) for s in c.samples}
    drawn = {
        name for chart in registry.get(run.experiment).charts(run.params) for name in chart.series
    }
    assert stored == drawn


def _assert_own_loopback_only(rows: dict) -> None:
    # A namespace of its own whose only interface is lo: no packet can reach a host interface
    # (tests/test_network_isolation.py checks the host's counters too).
    assert "interfaces in it: lo." in rows["network namespace"]["note"]
    assert rows["network namespace"]["value"] != netns.namespace_id()


def test_tcp_round_trips_in_the_sandbox_at_both_layers() -> None:
    run, _ = run_now(
        "tcp",
        {
            "measurement": "rtt",
            "message_bytes": 64,
            "count": 500,
            "duration_s": 5.0,
            "layers": ["python", "native"],
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    rows = _rows(run)
    native = rows["round trip, 64 B each way · native C loop"]
    assert native["layer"] == "native" and native["dist"]["n"] == 500
    assert rows["syscalls per round trip (client) · Python socket"]["value"] == 2
    assert "seccomp" in native["note"]
    assert rows["net.core.rmem_max"]["value"] and rows["kernel"]["value"]
    _assert_own_loopback_only(rows)
    _assert_charted(run)


def test_socket_options_effects_in_the_sandbox() -> None:
    run, _ = run_now(
        "socket-options",
        {
            "scenarios": ["nodelay", "buffers", "reuseaddr", "linger"],
            "exchanges": 8,
            "keepidle_s": 1,
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    rows = _rows(run)
    assert rows["per exchange · write, write, read — Nagle on (the default)"]["value"] >= 30
    assert rows["per exchange · write, write, read — TCP_NODELAY"]["value"] < 5
    # net.core.rmem_max is per network namespace here, and readable inside the sandbox.
    rmem_max = int(rows["net.core.rmem_max"]["value"])
    assert rows["SO_RCVBUF cap"]["value"] == 2 * rmem_max
    assert rows["bind without SO_REUSEADDR"]["value"] == errno.EADDRINUSE
    assert rows["bind with SO_REUSEADDR"]["value"] == 0
    assert rows["peer's recv after close with SO_LINGER {1, 0}"]["value"] == errno.ECONNRESET
    _assert_own_loopback_only(rows)
    _assert_charted(run)


def test_the_trace_shows_both_ends_of_the_connection_under_their_own_pids() -> None:
    run = Run.objects.create(
        experiment="tcp",
        params={
            "measurement": "rtt",
            "message_bytes": 64,
            "count": 3,
            "duration_s": 1.0,
            "layers": ["native"],
        },
        status=Run.Status.RUNNING,
        trace_mode=Run.TraceMode.FULL,
    )
    run = execute(run.pk, lambda group, message: None)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    events = [e for c in TraceChunk.objects.filter(run=run).order_by("pk") for e in c.events()]
    tcp = [e for e in events if "TCP:" in " ".join(e.get("args") or []) + (e.get("ret") or "")]
    pids = {
        name: {e["pid"] for e in tcp if e["name"] == name}
        for name in (
            "socket",
            "bind",
            "listen",
            "accept4",
            "connect",
            "shutdown",
            "sendto",
            "recvfrom",
        )
    }
    (server,) = pids["accept4"]
    (client,) = pids["connect"]
    assert server != client
    assert pids["bind"] == pids["listen"] == {server}
    assert pids["socket"] == pids["shutdown"] == {server, client}
    assert pids["sendto"] == pids["recvfrom"] == {server, client}
    connect = next(e for e in tcp if e["name"] == "connect")
    assert connect["errno"] == "EINPROGRESS"
    assert any(e["name"] == "close" and e["pid"] == server for e in tcp)


def test_the_headless_command_runs_socket_options_and_prints_json() -> None:
    out = io.StringIO()
    call_command(
        "run_experiment",
        "socket-options",
        "--param",
        "scenarios=tos,rcvlowat",
        "--json",
        stdout=out,
        stderr=io.StringIO(),
    )
    printed = json.loads(out.getvalue())
    assert printed["status"] == Run.Status.SUCCEEDED and not printed["unsandboxed"]
    rows = {row["metric"]: row for row in printed["results"]}
    assert rows["TOS byte received, sender IP_TOS 0xb8"]["value"] == 0xB8
    assert rows["POLLIN first reported, SO_RCVLOWAT 500"]["value"] == 500
