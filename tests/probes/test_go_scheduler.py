from __future__ import annotations

import pytest

from sysops.experiments.go_scheduler import probe

from .harness import run_probe


def by_variant(events) -> dict[tuple[str, str], dict]:
    (result,) = events.of("result")
    return {(r.get("layer"), r["metric"].split(": ")[-1]): r for r in result["rows"]}


def test_a_raw_syscall_without_async_preemption_stops_the_counter_for_the_whole_block() -> None:
    events = run_probe(
        probe.run, {"variants": ["raw_sleep_nopreempt"], "block_ms": 200, "lead_ms": 30}
    )

    assert not events.of("error")
    rows = by_variant(events)
    assert rows["raw_sleep_nopreempt", "share of the block the counter ran"]["value"] <= 5
    assert rows["raw_sleep_nopreempt", "counter first ran after the block began"]["value"] >= 190


@pytest.mark.parametrize("variant", ["syscall_sleep", "syscall_read"])
def test_through_syscall_the_counter_resumes_within_tens_of_ms_on_a_new_thread(
    variant: str,
) -> None:
    events = run_probe(probe.run, {"variants": [variant], "block_ms": 200, "lead_ms": 30})

    assert not events.of("error")
    rows = by_variant(events)
    assert rows[variant, "counter first ran after the block began"]["value"] < 100
    assert rows[variant, "share of the block the counter ran"]["value"] > 0
    threads = rows[variant, "OS threads before → during the block"]
    assert threads["threads_during"] > threads["threads_before"]


def test_with_async_preemption_the_raw_sleep_is_interrupted_and_the_counter_runs() -> None:
    events = run_probe(
        probe.run, {"variants": ["raw_sleep_preempt"], "block_ms": 200, "lead_ms": 30}
    )

    rows = by_variant(events)
    assert "EINTR" in rows["raw_sleep_preempt", "time in the call"]["note"]
    assert rows["raw_sleep_preempt", "counter first ran after the block began"]["value"] < 150


def test_the_go_program_charts_the_counter_itself() -> None:
    events = run_probe(
        probe.run, {"variants": ["syscall_sleep", "cgo_sleep"], "block_ms": 50, "lead_ms": 20}
    )

    for variant in ("syscall_sleep", "cgo_sleep"):
        samples = events.samples(variant)
        assert samples, variant
        assert samples[0]["x"] < 0 < samples[-1]["x"]  # before and after the block began
        counts = [s["y"] for s in samples]
        assert counts == sorted(counts) and counts[-1] > counts[0]
    facts = [r for r in events.of("result")[0]["rows"] if r["metric"].startswith("Go release")]
    assert facts and facts[0]["value"].startswith("go1.") and facts[0]["value"].endswith(", 1")


@pytest.mark.parametrize(
    "params",
    [
        {"variants": ["raw_read"], "block_ms": 100, "lead_ms": 20},  # never offered: deadlock
        {"variants": ["syscall_sleep"], "block_ms": 10**6, "lead_ms": 20},
        {"variants": ["syscall_sleep"], "block_ms": 100, "lead_ms": -1},
    ],
)
def test_it_refuses_what_the_form_would(params: dict) -> None:
    with pytest.raises(ValueError):
        run_probe(probe.run, params)
