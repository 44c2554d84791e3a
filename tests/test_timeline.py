"""The timeline endpoint's data: tracks per pid, slices in seconds after the trace's start,
bounded by merging into time bins, and a window for zooming in."""

import pytest

from sysops.models import Run, TraceChunk
from sysops.tracing.timeline import timeline

T0 = 1_700_000_000.0


def call(seq, pid, t, name, duration_s=1e-5, errno=None):
    return {
        "seq": seq,
        "pid": pid,
        "ts": T0 + t,
        "kind": "syscall",
        "name": name,
        "duration_s": duration_s,
        "errno": errno,
        "cut_short": False,
    }


def test_it_makes_one_track_per_pid_with_its_side_of_the_connection():
    events = [
        call(1, 10, 0.0, "socket"),
        call(2, 10, 0.001, "listen"),
        call(3, 11, 0.002, "connect", errno="ECONNREFUSED"),
        call(4, 10, 0.003, "accept4", duration_s=0.002),
        {"seq": 5, "pid": 11, "ts": T0 + 0.004, "kind": "exit", "name": "exit"},
    ]
    data = timeline(events, t0=T0)
    assert [t["pid"] for t in data["tracks"]] == [10, 11]
    assert "server" in data["tracks"][0]["label"] and "client" in data["tracks"][1]["label"]
    assert data["span"] == [0.0, pytest.approx(0.005, abs=1e-6)]
    assert not data["merged"] and len(data["slices"]) == 4
    track, start, duration, name, failed, count = data["slices"][3]
    assert (track, data["names"][name], failed, count) == (0, "accept4", 0, 1)
    assert start == pytest.approx(0.003, abs=1e-6) and duration == pytest.approx(0.002, abs=1e-6)
    assert data["slices"][2][4] == 1  # the refused connect


def test_it_merges_beyond_the_bound_and_is_exact_again_when_zoomed_in():
    events = [call(i, 100 + i % 2, i * 1e-4, "read") for i in range(20_000)]
    data = timeline(events, t0=T0, max_slices=1_000)
    assert data["merged"] and len(data["slices"]) <= 1_000
    assert sum(s[5] for s in data["slices"]) == 20_000  # every call counted once
    narrow = timeline(events, t0=T0, start_s=0.5, end_s=0.55, max_slices=1_000)
    assert not narrow["merged"]
    assert all(0.5 - 1e-4 <= s[1] <= 0.55 for s in narrow["slices"])
    assert len(narrow["slices"]) == pytest.approx(500, abs=3)


@pytest.mark.django_db
def test_the_endpoint_reads_the_stored_events(client):
    run = Run.objects.create(
        experiment="epoll-echo", params={}, trace_mode="full", trace={"t0": T0, "status": "done"}
    )
    events = [call(1, 7, 0.0, "epoll_wait"), call(2, 8, 0.001, "sendto")]
    TraceChunk.objects.create(run=run, seq=1, count=2, data=TraceChunk.pack(events))
    data = client.get(f"/runs/{run.pk}/timeline/").json()
    assert [t["pid"] for t in data["tracks"]] == [7, 8]
    assert client.get(f"/runs/{run.pk}/timeline/?start=nan").status_code == 400
    assert client.get(f"/runs/{run.pk}/timeline/?start=1&end=2").json()["slices"] == []
