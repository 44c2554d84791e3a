"""Network experiments happen in the sandbox's own network namespace: a real sandboxed run puts
thousands of packets on its loopback, and the host's interfaces (its own lo included: the
sandbox's lo is another device) and the host's protocol counters see none of them.

Generic over experiments: each entry says how to run it and how many packets the run itself
reports having sent. Other traffic on this host can only add to the host's counters, so each is
allowed up to half the run's own packets: had the run's packets gone through the host, every
one of them would show."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from sysops.models import Run
from sysops.worker.toolkit import netns
from tests.helpers.netcounters import LOOPBACK, HostCounters
from tests.test_experiments_sandboxed import run_now

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class NetworkRun:
    slug: str
    params: dict[str, Any]
    packets_sent: Callable[[dict[str, dict[str, Any]]], int]  # from the run's result rows
    snmp: tuple[str, ...]  # host protocol counters the run's packets would move


NETWORK_RUNS = [
    NetworkRun(
        "raw-icmp",
        {
            "count": 1_000,
            "payload_bytes": 0,
            "interval_ms": 0,
            "ttl": 64,
            "hdrincl": False,
            "ip_options": "none",
        },
        lambda rows: rows["packets sent on this namespace's interfaces during the echoes"]["value"],
        ("Icmp.InEchos", "Icmp.OutEchoReps", "Icmp.InMsgs", "Icmp.OutMsgs"),
    ),
    NetworkRun(
        "tcp",
        {
            "measurement": "rtt",
            "message_bytes": 64,
            "count": 20_000,  # ≥ 40,000 packets: room for other traffic on a shared host
            "duration_s": 10.0,
            "layers": ["native"],
        },
        lambda rows: rows["packets sent on this namespace's interfaces during the measurement"][
            "value"
        ],
        ("Tcp.ActiveOpens", "Tcp.PassiveOpens", "Tcp.InSegs", "Tcp.OutSegs"),
    ),
]


@pytest.mark.parametrize("network_run", NETWORK_RUNS, ids=lambda r: r.slug)
def test_no_packet_of_a_sandboxed_run_reaches_the_host(network_run: NetworkRun) -> None:
    before = HostCounters.read()
    run, _ = run_now(network_run.slug, network_run.params)
    after = HostCounters.read()
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert not run.unsandboxed
    rows = {row["metric"]: row for row in run.results}
    sent = network_run.packets_sent(rows)
    assert sent >= 1_000, "the run must really have sent packets for this to mean anything"
    allowed = sent // 2
    tx = before.tx_delta(after)
    assert LOOPBACK in tx and len(tx) >= 1
    for interface, delta in tx.items():
        assert delta < allowed, f"host {interface} sent {delta} packets during a run of {sent}"
    for counter, delta in before.snmp_delta(after, *network_run.snmp).items():
        assert delta < allowed, f"host {counter} rose by {delta} during a run of {sent}"
    namespace = rows.get("network namespace")
    if namespace is not None:
        assert namespace["value"] != netns.namespace_id()
        assert "interfaces in it: lo." in namespace["note"]
