from __future__ import annotations

import pytest

from sysops.experiments.process_spawn import probe

from .harness import run_probe

pytestmark = pytest.mark.usefixtures("native_extension")


def medians(events, method):
    return {s["x"]: s["y"] for s in events.samples(method)}


def test_fork_grows_with_the_parent_while_posix_spawn_does_not() -> None:
    params = {
        "methods": ["fork_exit", "posix_spawn"],
        "parent_sizes_mib": [0, 256],
        "repetitions": 15,
        "warmup": 2,
    }

    events = run_probe(probe.run, params)

    assert not events.of("error")
    fork, spawn = medians(events, "fork_exit"), medians(events, "posix_spawn")
    assert set(fork) == set(spawn) == {0, 256}
    # Page tables for 256 MiB of 4 KiB pages: milliseconds here, never free. (Not a ratio to
    # fork[0]: this runs in the test process, whose own size sets fork[0], 5-20 ms measured.)
    fork_growth_us = fork[256] - fork[0]
    assert fork_growth_us > 1_000
    # posix_spawn (CLONE_VM | CLONE_VFORK) copies nothing: whatever it gained is noise, far below
    # fork's growth.
    assert spawn[256] - spawn[0] < fork_growth_us / 4
    rows = events.rows()
    fork_slope = rows["fork + _exit: cost per MiB of parent"]
    assert fork_slope["unit"] == "µs/MiB" and fork_slope["value"] > 4
    assert fork_slope["layer"] == "native"
    assert rows["posix_spawn: cost per MiB of parent"]["value"] < fork_slope["value"] / 4


def test_every_moment_of_a_cycle_is_in_order() -> None:
    params = {
        "methods": list(probe.METHODS),
        "parent_sizes_mib": [0, 8],
        "repetitions": 5,
        "warmup": 0,
    }

    events = run_probe(probe.run, params)

    assert not events.of("error")
    rows = events.rows()
    for method, label in probe.METHOD_LABELS.items():
        assert len(events.samples(method)) == 2
        reaped = rows[f"{label} from a 8 MiB parent: reaped"]
        assert reaped["dist"]["n"] == 5
        assert reaped["layer"] == ("python" if method == "subprocess" else "native")
        returned = rows[f"{label} from a 8 MiB parent: spawn call returned"]
        assert 0 < returned["dist"]["min"] <= reaped["dist"]["max"]
        exec_row = rows.get(f"{label} from a 8 MiB parent: exec done")
        # fork + _exit never execs; every other method does, before it is reaped.
        assert (exec_row is None) == (method == "fork_exit")
        start_row = rows.get(f"{label} from a 8 MiB parent: child start")
        # Only fork and vfork children run our code before exec.
        assert (start_row is not None) == (method in ("fork_exit", "fork_execve", "vfork_execve"))
    vfork_start = rows["vfork + execve from a 8 MiB parent: child start"]
    vfork_returned = rows["vfork + execve from a 8 MiB parent: spawn call returned"]
    # The vfork parent is suspended until its child has exec'd: the child always runs first.
    assert vfork_start["dist"]["max"] < vfork_returned["dist"]["max"]
    assert vfork_start["dist"]["min"] < vfork_returned["dist"]["min"]


def test_it_refuses_unbounded_parameters() -> None:
    with pytest.raises(ValueError, match="parent_sizes_mib"):
        run_probe(
            probe.run, {"methods": ["fork_exit"], "parent_sizes_mib": [0, 4096], "repetitions": 3}
        )
    with pytest.raises(ValueError, match="target"):
        run_probe(
            probe.run,
            {
                "methods": ["fork_exit"],
                "parent_sizes_mib": [0],
                "repetitions": 3,
                "target": "/bin/sh",
            },
        )
