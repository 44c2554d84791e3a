from __future__ import annotations

import pytest

from sysops.experiments.wasm_boundary import probe

from .harness import run_probe

pytestmark = pytest.mark.usefixtures("native_extension")

SMALL = {"iterations": 300, "repetitions": 3, "warmup": 0, "sizes": [64, 4_096]}


def test_the_module_calls_the_host_function_n_times() -> None:
    wasm = probe.Wasm()

    assert wasm.call_host(wasm.store, 1_234) == 1_234  # the running value, one added per call
    assert wasm.host_calls == 1_234
    assert wasm.call_wasm(wasm.store, 5_000) == 5_000
    wasm.memory.write(wasm.store, bytearray(b"\x01\x02\x03"), 0)
    assert wasm.sum(wasm.store, 0, 3) == 6


def test_it_times_every_layer_and_the_copies() -> None:
    events = run_probe(probe.run, {"layers": list(probe.LAYERS), **SMALL})

    assert not events.of("error")
    (result,) = events.of("result")
    rows = {row["layer"]: row for row in result["rows"] if row.get("layer")}
    for layer in probe.LAYERS:
        assert rows[layer]["unit"] == "ns/call"
        assert rows[layer]["dist"]["n"] == SMALL["repetitions"]
        assert rows[layer]["value"] > 0
    assert rows["native"]["ratio_to_native"] == 1.0
    # Orders of magnitude only: a call inside compiled code against a crossing out of Python.
    assert rows["wasm_to_wasm"]["value"] * 10 < rows["wasm_to_host"]["value"]
    assert rows["native"]["value"] * 10 < rows["python"]["value"]
    for variant in probe.COPIES:
        assert rows[variant]["unit"] == "ns/copy"
        assert [s["x"] for s in events.samples(variant)] == SMALL["sizes"]
    version = next(r for r in result["rows"] if r["metric"] == "wasmtime")["value"]
    assert version.split(".")[0].isdigit()
    assert version in rows["wasm_to_host"]["note"]


@pytest.mark.parametrize(
    "params",
    [
        {**SMALL, "layers": ["wasm_to_host"], "iterations": 10**9},
        {**SMALL, "layers": ["teleport"]},
        {**SMALL, "layers": ["native"], "sizes": [3]},
        {**SMALL, "layers": ["native"], "repetitions": 0},
    ],
)
def test_it_refuses_what_the_form_would(params: dict) -> None:
    with pytest.raises(ValueError):
        run_probe(probe.run, params)
