"""raw-icmp for real: through the runner, in the sandbox (inside uid 0 with CAP_NET_RAW only,
its own network namespace), traced, and headless."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from sysops import selectors
from sysops.agent.runner import execute
from sysops.models import Run, SampleChunk
from sysops.worker.toolkit import inet
from tests.helpers.icmp import expected_echo_reply, packets_panel
from tests.test_experiments_sandboxed import run_now

pytestmark = pytest.mark.django_db(transaction=True)

EPERM, EACCES = 1, 13
PARAMS = {
    "count": 20,
    "payload_bytes": 100,
    "interval_ms": 0,
    "ttl": 5,
    "hdrincl": False,
    "ip_options": "none",
}


def rows_of(run: Run) -> dict:
    return {row["metric"]: row for row in run.results}


def test_every_reply_verifies_and_matches_the_packet_built_by_hand() -> None:
    run, _ = run_now("raw-icmp", PARAMS)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert not run.unsandboxed
    rows = rows_of(run)
    assert rows["echo replies received"]["value"] == 20
    assert rows["replies whose IP header checksum verifies"]["value"] == 20
    assert rows["replies whose ICMP checksum verifies"]["value"] == 20
    assert rows["our own echo requests seen on the raw socket"]["value"] == 20
    assert rows["TTL of our requests, as decoded"]["value"] == "5"
    assert rows["TTL of the replies, as decoded"]["value"] == "64"
    panel = packets_panel(rows)
    request, *replies = (bytes.fromhex(p["hex"]) for p in panel["packets"])
    assert inet.parse_icmp_packet(request).ip.ttl == 5
    assert len(replies) == 2
    for reply in replies:
        assert reply == expected_echo_reply(reply, payload_bytes=100)
    # In the sandbox the worker is pid 2 of its own pid namespace: that is its identifier.
    assert {inet.parse_icmp_packet(r).icmp.identifier for r in replies} == {2}
    assert {line[-2] for line in panel["table"]} == {"ok"}
    stored = {s[0] for c in SampleChunk.objects.filter(run=run) for s in c.samples}
    assert stored == {"rtt_us", "stamped_us", "kernel_us"}


def test_the_sandbox_keeps_cap_net_raw_and_a_child_without_it_gets_eperm() -> None:
    run, _ = run_now("raw-icmp", {**PARAMS, "count": 2})
    assert run.status == Run.Status.SUCCEEDED, run.reason
    rows = rows_of(run)
    assert rows["socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) with CAP_NET_RAW"]["value"] == 0
    refused = rows["socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) without CAP_NET_RAW"]
    assert refused["value"] == EPERM
    assert "still uid 0" in refused["note"]
    # A fresh network namespace closes ping sockets to every group ("1 0"), which the sandbox's
    # user namespace shows as unmapped ids: capability or not, EACCES.
    assert rows["socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) with CAP_NET_RAW"]["value"] == EACCES
    assert rows["socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) without CAP_NET_RAW"]["value"] == EACCES
    assert rows["net.ipv4.ping_group_range"]["value"] == "65534 65534"


def test_the_sampled_trace_shows_the_raw_socket_and_the_refusal() -> None:
    run = Run.objects.create(
        experiment="raw-icmp",
        params={**PARAMS, "count": 10},
        trace_mode=Run.TraceMode.SAMPLED,
        status=Run.Status.RUNNING,
    )
    run = execute(run.pk, lambda group, message: None)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.trace["status"] == "done", run.trace
    events = [e for e in selectors.trace_events(run) if e["kind"] == "syscall"]
    sockets = [e for e in events if e["name"] == "socket" and "SOCK_RAW" in e["args"][1]]
    assert [e["errno"] for e in sockets] == ["EPERM", None]  # the child first, then the echoes
    assert sockets[0]["pid"] != sockets[1]["pid"]
    assert any(e["name"] == "capset" for e in events if e["pid"] == sockets[0]["pid"])
    sends = [e for e in events if e["name"] == "sendto"]
    assert len(sends) == 3  # the sampled pass: three echoes
    assert all("htons(0)" in e["args"][4] and "127.0.0.1" in e["args"][4] for e in sends)
    received = [e for e in events if e["name"] == "recvmsg" and e["errno"] is None]
    assert len(received) == 6  # per echo: our request's copy, then the reply
    assert {e["errno"] for e in events if e["name"] == "recvmsg"} == {None, "EAGAIN"}


def test_the_headless_command_runs_it() -> None:
    out = io.StringIO()
    call_command(
        "run_experiment",
        "raw-icmp",
        "--param",
        "count=3",
        "--param",
        "ip_options=record_route",
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    assert "echo replies received" in text
    assert "verifying once the address recorded on arrival is undone" in text
    assert Run.objects.get().status == Run.Status.SUCCEEDED
