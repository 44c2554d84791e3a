"""The mmap probe, run directly: physical facts about faults and files, wide margins."""

from __future__ import annotations

import pytest

from sysops.experiments.mmap import probe

from .harness import run_probe

pytestmark = pytest.mark.usefixtures("native_extension")

SMALL = {
    "kind": "anonymous",
    "sharing": ["private"],
    "size_kib": 2048,
    "pattern": "page",
    "access": "write",
    "populate": ["none", "map_populate"],
    # No huge pages: one 4 KiB fault per page is the fact under test.
    "thp": ["nohugepage"],
    "layers": ["native", "python"],
    "repetitions": 3,
    "warmup": 1,
}
PAGES = 2048 * 1024 // 4096


def _row(events, prefix: str, label: str) -> dict:
    return events.rows()[f"{prefix}, {label}"]


@pytest.mark.parametrize("layer", ["C", "Python mmap"])
def test_it_takes_a_fault_per_page_without_populate_and_almost_none_with_it(layer: str) -> None:
    events = run_probe(probe.run, SMALL)

    assert not events.of("error")
    plain = _row(events, "faults per page", f"{layer} MAP_PRIVATE MADV_NOHUGEPAGE")
    populated = _row(events, "faults per page", f"{layer} MAP_PRIVATE MAP_POPULATE MADV_NOHUGEPAGE")
    assert plain["dist"]["min"] >= 0.95  # one per page (plus the odd fault of the loop itself)
    assert plain["dist"]["max"] <= 1.2
    assert populated["dist"]["max"] <= 0.05
    # MAP_POPULATE moved the work into mmap: the map takes longer than the plain one.
    plain_map = _row(events, "map time", f"{layer} MAP_PRIVATE MADV_NOHUGEPAGE")
    populated_map = _row(events, "map time", f"{layer} MAP_PRIVATE MAP_POPULATE MADV_NOHUGEPAGE")
    assert populated_map["value"] > plain_map["value"]


def test_it_charts_ns_and_faults_per_page_for_every_variant_and_repetition() -> None:
    events = run_probe(probe.run, SMALL)

    ids = [v.id for v in probe.variants(SMALL)]
    assert len(ids) == 4
    for variant in ids:
        assert [s["x"] for s in events.samples(variant)] == [0, 1, 2]
        assert [s["x"] for s in events.samples(f"faults-{variant}")] == [0, 1, 2]
        assert all(s["y"] > 0 for s in events.samples(variant))
    rows = events.rows()
    touch = rows["first touch, C MAP_PRIVATE MADV_NOHUGEPAGE"]
    assert touch["unit"] == "ns/page" and touch["layer"] == "native"
    assert touch["dist"]["n"] == 3 and touch["ratio_to_native"] == 1.0
    assert "seccomp" in touch["note"]
    assert rows["RSS growth, C MAP_PRIVATE MADV_NOHUGEPAGE"]["value"] >= 1.5  # of 2 MiB written
    assert "transparent huge pages" in rows and "page size (bytes)" in rows


def test_a_private_write_never_reaches_the_file_and_a_shared_one_does() -> None:
    params = {**SMALL, "kind": "file", "sharing": ["private", "shared"], "populate": ["none"]}

    events = run_probe(probe.run, params)

    assert not events.of("error")
    for layer in ("C", "Python mmap"):
        private = _row(
            events, "file pages changed (read back)", f"{layer} MAP_PRIVATE MADV_NOHUGEPAGE"
        )
        shared = _row(
            events, "file pages changed (read back)", f"{layer} MAP_SHARED MADV_NOHUGEPAGE"
        )
        assert private["value"] == 0
        assert shared["value"] == PAGES
        assert _row(events, "msync time", f"{layer} MAP_SHARED MADV_NOHUGEPAGE")["unit"] == "µs"
    assert "file map's filesystem" in events.rows()


def test_a_read_of_an_anonymous_private_map_is_the_zero_page() -> None:
    params = {**SMALL, "access": "read", "populate": ["none"], "layers": ["native"]}

    events = run_probe(probe.run, params)

    growth = _row(events, "RSS growth", "C MAP_PRIVATE MADV_NOHUGEPAGE")
    faults = _row(events, "faults per page", "C MAP_PRIVATE MADV_NOHUGEPAGE")
    assert faults["dist"]["min"] >= 0.95  # still a fault per page…
    assert growth["value"] < 1.0  # …but no 2 MiB of new memory: every page is the zero page


@pytest.mark.parametrize(
    ("name", "value"),
    [("size_kib", 3), ("size_kib", 256 * 1024 + 4), ("size_kib", 6), ("repetitions", 0)],
)
def test_it_refuses_parameters_out_of_bounds(name: str, value: int) -> None:
    with pytest.raises(ValueError, match=name):
        run_probe(probe.run, {**SMALL, name: value})


def test_a_size_sweep_draws_a_curve_per_variant_with_its_slope() -> None:
    params = {**SMALL, "size_kib": 1024, "populate": ["none"], "repetitions": 2, "sweep": True}

    events = run_probe(probe.run, params)

    assert probe.sweep_points_kib(1024) == [4, 16, 64, 256, 1024]
    for variant in probe.variants(params):
        curve = events.samples(f"sweep-{variant.id}")
        assert [s["x"] for s in curve] == [4, 16, 64, 256, 1024]
        assert all(s["y"] > 0 for s in curve)
        slope = events.rows()[f"first-touch time per MiB (fitted over the sweep), {variant.label}"]
        assert slope["unit"] == "µs/MiB" and slope["value"] > 0
        knee = events.rows()[f"ns/page changes behaviour after, {variant.label}"]
        assert knee["value"] in (16, 64, 256)
