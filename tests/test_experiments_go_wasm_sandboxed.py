"""The Go layers, go-scheduler and wasm-boundary, for real, in the real sandbox, through the
runner (the pattern of test_experiments_sandboxed.py)."""

import pytest

from sysops.models import Run, SampleChunk

from .test_experiments_sandboxed import by_layer, run_now

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_go_layers_run_in_the_sandbox_in_the_ladders_order():
    run, _ = run_now(
        "syscall-cost",
        {
            "call": "getppid",
            "layers": ["cgo", "go_syscall", "go_raw", "native"],
            # Short repetitions, many of them: on a shared host the fastest is then one that
            # ran undisturbed.
            "iterations": 5_000,
            "repetitions": 40,
            "warmup": 3,
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    rows = by_layer(run)
    assert list(rows) == ["cgo", "go_syscall", "go_raw", "native"]
    for row in rows.values():
        assert 0 < row["dist"]["min"] <= row["dist"]["median"] == row["value"]
    # entersyscall/exitsyscall add tens of ns to a call of several hundred here, and cgo adds
    # its crossing on top. Compared on each layer's fastest repetition, the one a shared host
    # disturbed least, with wide margins.
    fastest = {layer: row["dist"]["min"] for layer, row in rows.items()}
    assert fastest["go_syscall"] >= 0.85 * fastest["go_raw"]
    assert fastest["cgo"] >= 0.85 * max(fastest["go_syscall"], fastest["go_raw"])
    assert all(row["ratio_to_native"] > 0 for row in rows.values())


def test_go_scheduler_shows_what_entersyscall_buys():
    run, _ = run_now(
        "go-scheduler",
        {
            "variants": ["syscall_sleep", "raw_sleep_nopreempt", "cgo_sleep"],
            "block_ms": 200,
            "lead_ms": 30,
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert not run.unsandboxed
    rows = {(r.get("layer"), r["metric"].split(": ")[-1]): r for r in run.results}
    # The RawSyscall with async preemption off holds the only P: the counter waits it out.
    raw_wait = rows["raw_sleep_nopreempt", "counter first ran after the block began"]["value"]
    assert raw_wait >= 190
    assert rows["raw_sleep_nopreempt", "share of the block the counter ran"]["value"] <= 5
    # Through syscall.Syscall or cgo, sysmon hands the P over within tens of ms, to a new thread.
    for variant in ("syscall_sleep", "cgo_sleep"):
        assert rows[variant, "counter first ran after the block began"]["value"] < 100
        threads = rows[variant, "OS threads before → during the block"]
        assert threads["threads_during"] > threads["threads_before"] > 0
    # The Go program wrote the counter's progress on the events fd itself: stored as samples.
    stored = [s for c in SampleChunk.objects.filter(run=run) for s in c.samples]
    assert {series for series, _, _ in stored} >= {"syscall_sleep", "raw_sleep_nopreempt"}


def test_wasm_boundary_runs_wasmtime_inside_the_sandbox():
    run, _ = run_now(
        "wasm-boundary",
        {
            "layers": ["wasm_to_host", "wasm_to_wasm", "native", "syscall"],
            "iterations": 500,
            "repetitions": 3,
            "warmup": 0,
            "sizes": [64, 32_768],
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert not run.unsandboxed
    rows = by_layer(run)
    # The probe checked the module's results (the host function called N times) or failed.
    for layer in ("wasm_to_host", "wasm_to_wasm", "native", "syscall"):
        assert rows[layer]["value"] > 0 and rows[layer]["dist"]["n"] == 3
    assert rows["wasm_to_wasm"]["value"] * 10 < rows["wasm_to_host"]["value"]
    assert {"wasm_write", "wasm_read", "kernel_read", "python_copy"} <= set(rows)
    assert any(r["metric"] == "wasmtime" and r["value"] for r in run.results)
