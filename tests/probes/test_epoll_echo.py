from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sysops.experiments.epoll_echo import probe

from .harness import Events, run_probe

REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"clients": 8, "message_bytes": 512, "duration_s": 1.0}


def _server_pid(events: Events) -> int:
    (log,) = [e for e in events.of("log") if e["message"].startswith("echo server pid")]
    return int(log["message"].split()[3])


def test_it_echoes_every_byte() -> None:
    events = run_probe(probe.run, PARAMS)

    assert not events.of("error")
    rows = events.rows()
    assert rows["requests completed"]["value"] > 0
    assert rows["requests/s"]["value"] > 0
    assert rows["lost bytes"]["value"] == 0
    assert rows["mismatched bytes"]["value"] == 0
    sent = rows["bytes sent"]["value"]
    assert sent == rows["requests completed"]["value"] * PARAMS["message_bytes"]
    assert rows["bytes echoed back"]["value"] == sent
    assert rows["bytes echoed (server)"]["value"] == sent
    assert rows["errors"]["value"] == 0
    assert rows["connections"]["value"] == PARAMS["clients"]
    assert "accepted 8" in rows["connections"]["note"]
    # One distribution, one row: its median, quartiles, p99 and max are its columns.
    assert [m for m in rows if m.startswith("latency")] == ["latency per request"]
    latency = rows["latency per request"]
    assert latency["unit"] == "µs"
    dist = latency["dist"]
    assert dist["min"] <= dist["q1"] <= latency["value"] == dist["median"] <= dist["q3"]
    assert dist["q3"] <= dist["p99"] <= dist["max"]
    assert dist["n"] == rows["requests completed"]["value"] >= 100


def test_it_samples_every_250_ms() -> None:
    events = run_probe(probe.run, PARAMS)

    # Order and counts, not wall-clock spacing: a loaded host may stall the loop, and the probe
    # then skips the ticks it missed rather than bunching them.
    duration_s = PARAMS["duration_s"]
    for series in ("requests_per_s", "latency_p50_us", "latency_p99_us"):
        xs = [s["x"] for s in events.samples(series)]
        # A window of fewer than 100 requests (a stalled host) has no p99 point.
        assert (series == "latency_p99_us" or xs) and len(xs) <= int(duration_s / 0.25), xs
        assert xs == sorted(set(xs)), xs
        assert all(0 < x <= duration_s + 0.5 for x in xs), xs
    assert all(s["y"] > 0 for s in events.samples("requests_per_s"))
    assert [e["name"] for e in events.of("phase")] == [
        "start server",
        "load",
        "drain",
        "stop server",
    ]


def test_it_leaves_no_server_behind() -> None:
    events = run_probe(probe.run, PARAMS)

    pid = _server_pid(events)
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped by the probe
    assert not Path(f"/proc/{pid}").exists()


def test_it_says_which_bytes_never_came_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # A server that swallows one byte once: its client waits for it until the drain gives up.
    original_read = probe._EchoServer._read
    swallowed = []

    def read_and_swallow(self, conn) -> None:
        before = len(conn.out)
        original_read(self, conn)
        if not swallowed and self.bytes_received > 10_000 and len(conn.out) > before:
            del conn.out[-1]
            swallowed.append(True)

    monkeypatch.setattr(probe._EchoServer, "_read", read_and_swallow)
    monkeypatch.setattr(probe, "DRAIN_TIMEOUT_S", 0.3)

    events = run_probe(probe.run, {**PARAMS, "duration_s": 0.5})

    assert events.rows()["lost bytes"]["value"] == 1
    errors = [e["message"] for e in events.of("error")]
    assert len(errors) == 1
    assert errors[0].startswith("1 byte sent never came back: client ")
    assert ": 1 byte of request " in errors[0]


def test_it_says_which_bytes_came_back_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    original_read = probe._EchoServer._read
    flipped = []

    def read_and_flip(self, conn) -> None:
        before = len(conn.out)
        original_read(self, conn)
        if not flipped and self.bytes_received > 10_000 and len(conn.out) > before:
            conn.out[before] ^= 0x20
            flipped.append(True)

    monkeypatch.setattr(probe._EchoServer, "_read", read_and_flip)

    events = run_probe(probe.run, {**PARAMS, "duration_s": 0.5})

    rows = events.rows()
    assert rows["mismatched bytes"]["value"] == 1
    assert rows["lost bytes"]["value"] == 0
    (error,) = [e["message"] for e in events.of("error")]
    assert error.startswith("echoed bytes differ from what was sent: 1 byte in 1 request: client ")
    assert ": 1 byte wrong from offset" in error


@pytest.mark.slow
def test_the_server_dies_with_its_parent() -> None:
    # The worker killed outright (the runner's wall-clock limit, say) must not leave its
    # server holding the loopback port or the pid limit.
    code = (
        "import sys; from sysops.worker.emit import Emitter; "
        "from sysops.experiments.epoll_echo import probe; "
        "probe.run({'clients': 2, 'message_bytes': 64, 'duration_s': 30.0}, Emitter(1))"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        pid = None
        assert worker.stdout is not None
        for line in worker.stdout:
            if "echo server pid" in line:
                pid = int(line.split("echo server pid ")[1].split()[0])
                break
        assert pid is not None
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    deadline_s = time.monotonic() + 5
    while time.monotonic() < deadline_s and _alive(pid):
        time.sleep(0.05)
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited, awaiting its reaper


@pytest.mark.parametrize(
    "bad",
    [
        {"clients": 0},
        {"clients": 257},
        {"message_bytes": 65_537},
        {"duration_s": 0.1},
        {"duration_s": float("nan")},
        {"sample_interval_ms": 1},
        {"trigger_mode": "oneshot"},
    ],
)
def test_it_refuses_params_out_of_bounds(bad: dict) -> None:
    with pytest.raises(ValueError):
        run_probe(probe.run, {**PARAMS, **bad})


def test_the_edge_triggered_server_echoes_every_byte_and_drains_to_eagain() -> None:
    events = run_probe(probe.run, {**PARAMS, "trigger_mode": "edge"})

    assert not events.of("error")
    rows = events.rows()
    completed = rows["requests completed"]["value"]
    assert completed > 0
    sent = rows["bytes sent"]["value"]
    assert sent == completed * PARAMS["message_bytes"]
    assert rows["bytes echoed back"]["value"] == sent
    assert rows["bytes echoed (server)"]["value"] == sent
    assert rows["lost bytes"]["value"] == rows["mismatched bytes"]["value"] == 0
    assert rows["trigger mode"]["value"] == "edge"
    # Every edge is read until EAGAIN, and the socket is never re-armed with epoll_ctl.
    assert rows["server recv EAGAIN per request"]["value"] >= 0.5
    assert rows["server epoll_ctl per request"]["value"] == 0


def test_the_level_triggered_server_reads_once_per_event() -> None:
    rows = run_probe(probe.run, {**PARAMS, "duration_s": 0.5}).rows()

    assert rows["trigger mode"]["value"] == "level"
    assert rows["server recv EAGAIN per request"]["value"] < 0.1
    assert rows["server recv per request"]["value"] >= 1
