"""The socket-options probe for real, outside the sandbox: each scenario's effect."""

from __future__ import annotations

import errno

import pytest

from sysops.experiments.socket_options import probe
from sysops.worker.toolkit import hostfacts

from .harness import run_probe


def _rows(*scenarios: str, **extra: int) -> dict:
    events = run_probe(probe.run, {"scenarios": list(scenarios), **extra})
    assert not events.of("error")
    return events


def test_nagle_stalls_write_write_read_and_tcp_nodelay_does_not() -> None:
    events = _rows("nodelay", exchanges=12)
    rows = events.rows()
    nagle = rows["per exchange · write, write, read — Nagle on (the default)"]
    nodelay = rows["per exchange · write, write, read — TCP_NODELAY"]
    one_write = rows["per exchange · one write, read — Nagle on"]
    assert nagle["value"] >= 30  # ms: the delayed ACK (40 ms minimum on Linux)
    assert nodelay["value"] < 5
    assert one_write["value"] < 5
    assert "delayed ACK" in rows["Nagle + delayed ACK stall"]["note"]
    options = rows["TCP_NODELAY read back"]["detail"]["options"]
    assert [o["got"] for o in options] == [0, 1, 0]
    assert {o["level"] for o in options} == {"IPPROTO_TCP"}
    assert len(events.samples("nagle")) == 12


def test_so_rcvbuf_reads_back_twice_the_request_capped_at_rmem_max() -> None:
    events = _rows("buffers")
    rows = events.rows()
    rmem_max = int(hostfacts.sysctl("net.core.rmem_max"))
    points = {s["x"]: s["y"] for s in events.samples("so_rcvbuf")}
    floor = rows["SO_RCVBUF floor"]["value"]
    for requested, granted in points.items():
        assert granted == max(floor, min(2 * requested, 2 * rmem_max)), (requested, granted)
    assert rows["SO_RCVBUF cap"]["value"] == 2 * rmem_max
    assert rows["SO_RCVBUF granted / requested, between floor and cap"]["value"] == 2
    small = rows["throughput, receiver with SO_RCVBUF 4,096 B"]["value"]
    large = rows["throughput, receiver with SO_RCVBUF 1,048,576 B"]["value"]
    assert small < large  # a tiny window throttles the flow


def test_rebinding_gives_eaddrinuse_without_so_reuseaddr_and_succeeds_with_it() -> None:
    rows = _rows("reuseaddr").rows()
    assert rows["bind without SO_REUSEADDR"]["value"] == errno.EADDRINUSE
    assert rows["bind with SO_REUSEADDR"]["value"] == 0
    assert rows["bind with SO_REUSEADDR, old listener without it"]["value"] == errno.EADDRINUSE
    time_wait = rows["TIME_WAIT sockets on the port"]
    assert time_wait["value"] == 1
    (entry,) = time_wait["detail"]["entries"]
    assert entry["state"] == "TIME_WAIT" and entry["raw"]["st"] == "06"
    assert entry["local"].startswith("127.0.0.1:")


def test_so_linger_zero_gives_the_peer_econnreset() -> None:
    rows = _rows("linger").rows()
    assert rows["peer's recv after close with SO_LINGER {1, 0}"]["value"] == errno.ECONNRESET
    assert rows["peer's recv after a plain close"]["value"] == 0


def test_keepalive_probes_are_acknowledged_while_idle() -> None:
    rows = _rows("keepalive", keepidle_s=1).rows()
    assert rows["last ACK received, without keepalive"]["value"] >= 2_000
    assert rows["last ACK received, with keepalive"]["value"] < 1_500
    entries = rows["last ACK received, with keepalive"]["detail"]["entries"]
    assert entries[0]["timer"] == "keepalive"


def test_ip_tos_reaches_the_receiver_and_tcp_keeps_the_ecn_bits() -> None:
    rows = _rows("tos").rows()
    assert rows["TOS byte received, sender default"]["value"] == 0
    assert rows["TOS byte received, sender IP_TOS 0xb8"]["value"] == 0xB8
    assert rows["IP_TOS on TCP: set 0xbb, read back"]["value"] == 0xB8


def test_so_rcvlowat_holds_pollin_back_until_the_mark() -> None:
    rows = _rows("rcvlowat").rows()
    assert rows["POLLIN first reported, default SO_RCVLOWAT (1)"]["value"] == 100
    assert rows["POLLIN first reported, SO_RCVLOWAT 500"]["value"] == 500


def test_every_option_carries_its_level_name_and_unit() -> None:
    result = _rows("reuseaddr", "linger", "tos", "rcvlowat")
    for row in result.rows().values():
        for option in (row.get("detail") or {}).get("options", []):
            assert option["level"] in ("SOL_SOCKET", "IPPROTO_TCP", "IPPROTO_IP")
            assert option["name"] and option["unit"]


def test_it_refuses_an_unknown_scenario() -> None:
    with pytest.raises(ValueError, match="scenarios"):
        probe.run({"scenarios": ["nope"]}, None)  # type: ignore[arg-type]
