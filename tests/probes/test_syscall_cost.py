from __future__ import annotations

import pytest

from sysops.experiments.syscall_cost import probe
from sysops.worker.fingerprint import fingerprint

from .harness import run_probe

pytestmark = pytest.mark.usefixtures("native_extension")

SMALL = {"iterations": 2_000, "repetitions": 5, "warmup": 1}
DIST_KEYS = {"n", "min", "median", "p99", "max"}


def test_it_measures_every_layer_of_getppid() -> None:
    params = {"call": "getppid", "layers": ["python", "ctypes", "native", "vdso"], **SMALL}

    events = run_probe(probe.run, params)

    assert not events.of("error")
    assert any("vdso layer applies only to clock_gettime" in e["message"] for e in events.of("log"))
    rows = {row["layer"]: row for row in events.rows().values()}
    assert list(rows) == ["python", "ctypes", "native"]
    for layer, row in rows.items():
        assert row["unit"] == "ns/call"
        assert set(row["dist"]) >= DIST_KEYS  # p99 is None while n < 100
        assert row["dist"]["n"] == SMALL["repetitions"]
        assert row["dist"]["min"] <= row["value"] == row["dist"]["median"] <= row["dist"]["max"]
        assert row["metric"] == f"getppid via {probe.LAYER_LABELS[layer]}"
        assert row["note"]
    assert rows["native"]["value"] < rows["python"]["value"]
    assert rows["native"]["ratio_to_native"] == 1.0


def test_it_emits_one_sample_per_layer_per_measured_repetition() -> None:
    params = {"call": "getppid", "layers": ["python", "ctypes", "native"], **SMALL}

    events = run_probe(probe.run, params)

    samples = events.of("sample")
    assert len(samples) == SMALL["repetitions"] * 3
    for layer in ("python", "ctypes", "native"):
        assert [s["x"] for s in events.samples(layer)] == list(range(SMALL["repetitions"]))
    assert [e["name"] for e in events.of("phase")] == ["warm-up", "measure"]
    assert events.of("progress")[-1]["value"] == 1.0


def test_it_times_clock_gettime_through_the_vdso() -> None:
    params = {"call": "clock_gettime", "layers": ["python", "ctypes", "native", "vdso"], **SMALL}

    events = run_probe(probe.run, params)

    rows = {row["layer"]: row for row in events.rows().values()}
    assert list(rows) == ["python", "ctypes", "native", "vdso"]
    clocksource = fingerprint()["clocksource"]
    assert "never enters the kernel" in rows["vdso"]["note"]
    assert str(clocksource) in rows["vdso"]["note"]
    if clocksource in probe.VDSO_CLOCKSOURCES:
        assert rows["vdso"]["value"] < rows["native"]["value"]


def test_it_reads_and_writes_through_every_layer() -> None:
    for call in ("read", "write"):
        params = {"call": call, "layers": ["python", "ctypes", "native"], **SMALL}

        events = run_probe(probe.run, params)

        assert not events.of("error")
        assert len(events.rows()) == 3


@pytest.mark.parametrize(
    "bad",
    [
        {"call": "fork"},
        {"layers": []},
        {"layers": ["python", "asm"]},
        {"iterations": 0},
        {"iterations": 10**9},
        {"repetitions": True},
        {"warmup": -1},
    ],
)
def test_it_refuses_params_out_of_bounds(bad: dict) -> None:
    params = {"call": "getppid", "layers": ["native"], **SMALL, **bad}

    with pytest.raises(ValueError):
        run_probe(probe.run, params)


def test_the_go_layers_take_their_turn_in_every_repetition() -> None:
    layers = ["ctypes", "cgo", "go_syscall", "go_raw", "native"]
    params = {"call": "getppid", "layers": layers, **SMALL}

    events = run_probe(probe.run, params)

    assert not events.of("error")
    rows = {row["layer"]: row for row in events.rows().values()}
    assert list(rows) == layers  # the ladder's order
    for layer in ("cgo", "go_syscall", "go_raw"):
        assert rows[layer]["dist"]["n"] == SMALL["repetitions"]
        assert [s["x"] for s in events.samples(layer)] == list(range(SMALL["repetitions"]))
        assert "GOMAXPROCS=1" in rows[layer]["note"] and "go1." in rows[layer]["note"]
    assert "syscall.Getppid" in rows["go_raw"]["metric"]


@pytest.mark.parametrize("call", ["read", "write", "clock_gettime"])
def test_the_go_layers_make_every_call(call: str) -> None:
    params = {"call": call, "layers": ["cgo", "go_syscall", "go_raw"], **SMALL}

    events = run_probe(probe.run, params)

    assert not events.of("error")
    assert all(row["value"] > 0 for row in events.rows().values())
