"""The errno-boundary probe, run directly: each refusal at each layer."""

from __future__ import annotations

import os

import pytest

from sysops.experiments.errno_boundary import probe

from .harness import run_probe

pytestmark = pytest.mark.usefixtures("native_extension")

ALL = {
    "cases": [case.id for case in probe.CASES],
    "layers": list(probe.LAYERS),
    "iterations": 50,
    "repetitions": 3,
    "warmup": 1,
    "interrupt_ms": 2,
    "interruptions": 2,
}


def _table(events) -> dict[tuple[str, str], dict]:
    detail = events.rows()["refused calls, side by side"]["detail"]
    assert detail["panel"] == "errno_boundary"
    by_id = {case.label: case.id for case in probe.CASES}
    layer_of = {label: layer for layer, label in probe.LAYER_LABELS.items()}
    return {(by_id[r["case"]], layer_of[r["layer"]]): r for r in detail["rows"]}


def test_the_bad_pointer_is_efault_at_all_three_layers_and_the_worker_lives_on() -> None:
    events = run_probe(probe.run, {**ALL, "cases": ["efault", "ebadf"]})

    assert not events.of("error")
    table = _table(events)
    assert table[("efault", "raw")]["result"] == "-14"
    assert table[("efault", "libc")]["result"] == "-1"
    assert table[("efault", "python")]["raised"] == "OSError: Bad address"
    for layer in probe.LAYERS:
        assert table[("efault", layer)]["name"] == "EFAULT"
        assert table[("efault", layer)]["errno"] == 14
    # The probe carried on after the bad pointer: the next case ran and the table came back.
    assert table[("ebadf", "raw")]["name"] == "EBADF"
    assert events.rows()["worker after the refused calls"]["value"] == "alive"


def test_every_case_gets_its_errno_in_the_shape_of_its_layer() -> None:
    events = run_probe(probe.run, ALL)

    table = _table(events)
    expected = {
        "efault": ("EFAULT", "OSError"),
        "ebadf": ("EBADF", "OSError"),
        "einval": ("EINVAL", "OSError"),
        "eacces": ("EACCES", "PermissionError"),
        "eperm": ("EPERM", "PermissionError"),
        "eagain": ("EAGAIN", "BlockingIOError"),
    }
    for case, (name, exception) in expected.items():
        number = table[(case, "libc")]["errno"]
        assert table[(case, "raw")]["result"] == str(-number)
        assert table[(case, "libc")]["result"] == "-1"
        assert table[(case, "python")]["raised"].startswith(f"{exception}: ")
        assert {table[(case, layer)]["name"] for layer in probe.LAYERS} == {name}
        assert all(table[(case, layer)]["as_expected"] for layer in probe.LAYERS)
    rows = events.rows()
    raw = rows["write(pipe, bad pointer, 1) via syscall instruction (C)"]
    assert raw["unit"] == "ns/call" and raw["dist"]["n"] == 3 and raw["ratio_to_native"] == 1.0
    assert raw["errno_name"] == "EFAULT"


def test_sa_restart_decides_between_eintr_and_a_resumed_read() -> None:
    events = run_probe(probe.run, {**ALL, "cases": ["eintr", "eintr_restart"]})

    table = _table(events)
    assert table[("eintr", "raw")]["result"] == "-4"
    assert table[("eintr", "libc")]["name"] == "EINTR"
    # With SA_RESTART the read resumed after the handler and returned the byte it wrote.
    assert table[("eintr_restart", "raw")]["result"] == "1"
    assert table[("eintr_restart", "libc")]["result"] == "1"
    for case in ("eintr", "eintr_restart"):
        for layer in probe.LAYERS:
            assert table[(case, layer)]["handler_runs"] == 1
        # Python retries an interrupted read itself (PEP 475): no exception either way.
        assert table[(case, "python")]["raised"] == "nothing"
        assert table[(case, "python")]["result"].startswith("1 byte")
        assert table[(case, "raw")]["min"] >= 1_500  # µs: it waited for its 2 ms timer
    assert table[("eintr", "raw")]["unit"] == "µs/call"


def test_it_leaves_no_descriptor_and_no_signal_handler_behind() -> None:
    import signal

    before_fds = set(os.listdir("/proc/self/fd"))
    before_handler = signal.getsignal(signal.SIGALRM)

    run_probe(probe.run, ALL)

    assert set(os.listdir("/proc/self/fd")) == before_fds
    assert signal.getsignal(signal.SIGALRM) == before_handler


def test_it_refuses_unknown_cases_and_unbounded_counts() -> None:
    with pytest.raises(ValueError, match="cases"):
        run_probe(probe.run, {**ALL, "cases": ["segfault"]})
    with pytest.raises(ValueError, match="iterations"):
        run_probe(probe.run, {**ALL, "iterations": probe.ITERATIONS_MAX + 1})
