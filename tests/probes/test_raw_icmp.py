"""raw-icmp's probe run directly (outside the sandbox, so on the host's loopback): it needs
CAP_NET_RAW here, as the sandbox's worker has it there."""

from __future__ import annotations

import pytest

from sysops.experiments.raw_icmp.probe import run
from sysops.worker.toolkit import caps, inet
from tests.helpers.icmp import expected_echo_reply, packets_panel
from tests.probes.harness import run_probe

pytestmark = pytest.mark.skipif(
    not caps.has("CAP_NET_RAW"), reason="a raw socket needs CAP_NET_RAW in this process"
)

EPERM, EACCES = 1, 13


def params(**overrides):
    return {
        "count": 12,
        "payload_bytes": 56,
        "interval_ms": 0,
        "ttl": 9,
        "hdrincl": False,
        "ip_options": "none",
        **overrides,
    }


def test_every_reply_verifies_and_is_the_packet_built_by_hand() -> None:
    events = run_probe(run, params())
    rows = events.rows()
    assert rows["echo requests sent"]["value"] == 12
    assert rows["echo replies received"]["value"] == 12
    assert rows["loss"]["value"] == 0
    assert rows["replies whose IP header checksum verifies"]["value"] == 12
    assert rows["replies whose ICMP checksum verifies"]["value"] == 12
    assert rows["replies with our payload intact"]["value"] == 12
    # Our requests came back on the raw socket too, and were not taken for replies.
    assert rows["our own echo requests seen on the raw socket"]["value"] == 12
    assert rows["TTL of our requests, as decoded"]["value"] == "9"
    assert rows["TTL of the replies, as decoded"]["value"] == "64"
    panel = packets_panel(rows)
    request, *replies = panel["packets"]
    assert inet.parse_icmp_packet(bytes.fromhex(request["hex"])).icmp.type == 8
    for shown in replies:
        captured = bytes.fromhex(shown["hex"])
        assert captured == expected_echo_reply(captured, payload_bytes=56)
    assert [line[0] for line in panel["table"]] == list(range(1, 13))
    assert {(line[-2], line[-1]) for line in panel["table"]} == {("ok", "ok")}
    # Every echo timed, live, from Python and from the kernel's stamps.
    for series in ("rtt_us", "stamped_us", "kernel_us"):
        assert len(events.samples(series)) == 12
    python_us = rows["round trip, sendto → reply read (Python, raw socket)"]
    stamped_us = rows["round trip as ping reports it, sendto → reply stamped by the kernel"]
    kernel_us = rows["kernel turnaround, request in → reply in (SO_TIMESTAMPNS)"]
    assert [python_us["layer"], stamped_us["layer"], kernel_us["layer"]] == [
        "python",
        "stamped",
        "kernel",
    ]
    # Each leaves out more than the one before: nested intervals of the same echoes.
    medians = [r["dist"]["median"] for r in (kernel_us, stamped_us, python_us)]
    assert 0 < medians[0] < medians[1] < medians[2] < 100_000


def test_without_cap_net_raw_the_raw_socket_is_refused_with_eperm() -> None:
    rows = run_probe(run, params(count=1)).rows()
    assert rows["socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) with CAP_NET_RAW"]["value"] == 0
    refused = rows["socket(AF_INET, SOCK_RAW, IPPROTO_ICMP) without CAP_NET_RAW"]
    assert refused["value"] == EPERM and refused["note"].startswith("EPERM")
    # The ping socket depends on ping_group_range, not on the capability: same answer twice.
    with_cap = rows["socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) with CAP_NET_RAW"]["value"]
    without = rows["socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP) without CAP_NET_RAW"]["value"]
    assert with_cap == without and with_cap in (0, EACCES)
    assert rows["net.ipv4.ping_group_range"]["value"]


def test_a_header_built_by_hand_goes_out_as_built() -> None:
    rows = run_probe(run, params(count=5, hdrincl=True, ttl=33)).rows()
    assert rows["IP headers we built (IP_HDRINCL) that the kernel changed"]["value"] == 0
    assert rows["TTL of our requests, as decoded"]["value"] == "33"
    request = inet.parse_icmp_packet(bytes.fromhex(packets_panel(rows)["packets"][0]["hex"]))
    assert request.ip.identification == 1  # our own choice: the sequence number
    assert rows["replies whose IP header checksum verifies"]["value"] == 5


def test_record_route_makes_the_header_60_bytes_and_verifies_as_on_the_wire() -> None:
    for hdrincl in (False, True):
        rows = run_probe(run, params(count=3, ip_options="record_route", hdrincl=hdrincl)).rows()
        assert rows["echo replies received"]["value"] == 3
        assert rows["replies whose ICMP checksum verifies"]["value"] == 3
        verified = rows["… of the others, verifying once the address recorded on arrival is undone"]
        assert verified["value"] == 3 - rows["replies whose IP header checksum verifies"]["value"]
        for shown in packets_panel(rows)["packets"]:
            packet = bytes.fromhex(shown["hex"])
            assert inet.parse_ipv4(packet).ihl == 15
            assert inet.ip_checksum_verdict(packet) != inet.CHECKSUM_BAD


def test_it_refuses_unbounded_parameters() -> None:
    for bad in ({"count": 1_001}, {"payload_bytes": 1_401}, {"ttl": 0}, {"interval_ms": -1}):
        with pytest.raises(ValueError):
            run_probe(run, params(**bad))
