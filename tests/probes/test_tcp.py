"""The tcp probe for real, outside the sandbox: each measurement at both layers, small."""

from __future__ import annotations

import pytest

from sysops.experiments.tcp import probe

from .harness import run_probe

pytestmark = pytest.mark.usefixtures("native_extension")
BOTH = ["python", "native"]


def _run(measurement: str, size: int, count: int, duration_s: float = 0.3) -> dict:
    events = run_probe(
        probe.run,
        {
            "measurement": measurement,
            "message_bytes": size,
            "count": count,
            "duration_s": duration_s,
            "layers": BOTH,
        },
    )
    assert not events.of("error")
    return events


def test_it_times_connects_at_both_layers_with_seven_client_calls_each() -> None:
    events = _run("connect", 1, 300, duration_s=10)
    rows = events.rows()
    for label in ("Python socket", "native C loop"):
        latency = rows[f"connect latency · {label}"]
        assert latency["unit"] == "µs" and latency["dist"]["n"] == 300
        assert 0 < latency["dist"]["min"] <= latency["dist"]["median"] <= latency["dist"]["max"]
        # socket, connect (EINPROGRESS), poll, getsockopt(SO_ERROR), poll, recv (EOF), close
        assert rows[f"syscalls per connection (client) · {label}"]["value"] == 7
        assert rows[f"syscalls per connection (server) · {label}"]["value"] == pytest.approx(3, 0.2)
    assert rows["connect latency · native C loop"]["ratio_to_native"] == 1
    assert events.samples("native_median") and events.samples("python_max")


def test_a_round_trip_of_a_small_message_is_one_send_and_one_recv() -> None:
    rows = _run("rtt", 64, 2_000, duration_s=10).rows()
    for label in ("Python socket", "native C loop"):
        rtt = rows[f"round trip, 64 B each way · {label}"]
        assert rtt["dist"]["n"] == 2_000 and rtt["dist"]["p99"] is not None
        # Loopback round trips take microseconds, not milliseconds, and not nanoseconds.
        assert 1 < rtt["dist"]["median"] < 5_000
        assert rows[f"syscalls per round trip (client) · {label}"]["value"] == 2
        # The server's last recv is the one that returns 0 (EOF): one call more in all.
        assert rows[f"syscalls per round trip (server) · {label}"]["value"] == 2.001


def test_a_big_message_takes_more_than_one_recv() -> None:
    rows = _run("rtt", 1 << 20, 20, duration_s=10).rows()
    # 1 MiB does not fit one loopback segment train: the reader wakes several times.
    assert rows["syscalls per round trip (client) · native C loop"]["value"] > 2


def test_throughput_counts_every_byte_and_stops_at_the_duration() -> None:
    events = _run("throughput", 65_536, 1_000_000, duration_s=0.3)
    rows = events.rows()
    for label in ("Python socket", "native C loop"):
        mb_s = rows[f"throughput, 65,536 B messages · {label}"]["value"]
        gbit_s = rows[f"throughput in Gbit/s · {label}"]["value"]
        assert mb_s > 10  # loopback moves hundreds of MB/s even on a busy machine
        assert gbit_s == pytest.approx(mb_s * 8 / 1000, rel=0.01)
        assert rows[f"syscalls per message (sender) · {label}"]["value"] >= 1
    assert events.samples("native") and events.samples("python")


def test_it_refuses_unbounded_parameters() -> None:
    with pytest.raises(ValueError, match="count"):
        probe.run(
            {
                "measurement": "connect",
                "message_bytes": 1,
                "count": 200_000,
                "duration_s": 1.0,
                "layers": BOTH,
            },
            None,  # type: ignore[arg-type]  # refused before anything is emitted
        )
