"""Capabilities dropped for real in a forked child; this namespace's interface counters."""

from __future__ import annotations

import os
import socket

from sysops.worker.toolkit import caps, netns
from sysops.worker.toolkit.harness import Child, ChildContext


def test_capability_sets_are_read_and_named() -> None:
    sets = caps.capability_sets()
    assert set(sets) == set(caps.SETS)
    assert caps.names(1 << caps.CAPABILITIES["CAP_NET_RAW"] | 1 << 40) == ["CAP_NET_RAW", "cap_40"]
    assert caps.has("CAP_NET_RAW") == bool(sets["CapEff"] >> 13 & 1)


def _drop_net_raw(ctx: ChildContext) -> None:
    had = caps.has("CAP_NET_RAW")
    caps.drop("CAP_NET_RAW")
    sets = caps.capability_sets()
    ctx.report(
        {
            "had": had,
            "has": caps.has("CAP_NET_RAW"),
            "permitted": "CAP_NET_RAW" in caps.names(sets["CapPrm"]),
            "uid": os.getuid(),
        }
    )


def test_a_child_drops_a_capability_for_good_and_keeps_its_uid() -> None:
    child = Child.start(_drop_net_raw, name="child")
    try:
        child.stop()
    finally:
        child.kill_if_running()
    assert child.ready["has"] is False and child.ready["permitted"] is False
    assert child.ready["uid"] == os.getuid()
    assert caps.has("CAP_NET_RAW") == child.ready["had"]  # the parent keeps what it had


def test_interface_counters_count_what_this_namespace_sends() -> None:
    assert netns.namespace_id().startswith("net:[")
    before = netns.interface_counters()
    assert "lo" in before and set(before["lo"]) == {
        "rx_bytes",
        "rx_packets",
        "tx_bytes",
        "tx_packets",
    }
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
        for _ in range(50):
            sender.sendto(b"x", ("127.0.0.1", 9))
    after = netns.interface_counters()
    assert netns.packets_sent(before, after) >= 50
    assert netns.packets_sent(after, after) == 0
