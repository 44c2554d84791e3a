from __future__ import annotations

import random

import pytest

from sysops.worker.toolkit.stats import (
    Distribution,
    LogHistogram,
    Reservoir,
    SortedRuns,
    percentile,
    supports,
)


def test_it_takes_the_nearest_rank_so_every_percentile_was_measured() -> None:
    values = [10, 20, 30, 40, 50]
    assert percentile(values, 0.5) == 30
    assert percentile(values, 0.99) == 50
    assert percentile(values, 0.0) == 10
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_it_reports_tails_only_where_the_sample_count_supports_them() -> None:
    small = Distribution.of(range(1, 31))
    assert (small.n, small.min, small.max, small.median) == (30, 1, 30, 15.5)
    assert small.p99 is None and small.p999 is None  # with 30 values "p99" is the maximum
    assert small.p90 == 27
    assert small.to_dist()["p99"] is None

    big = Distribution.of(range(1, 1001))
    assert big.p99 == 990 and big.p999 == 999
    assert set(big.to_dist()) >= {"n", "min", "median", "p99", "max", "p90", "p999", "stdev"}
    assert supports(100, 0.99) and not supports(99, 0.99)


def test_it_scales_a_distribution_into_another_unit() -> None:
    dist = Distribution.of([1000.0, 2000.0, 3000.0]).scaled(1e-3)
    assert (dist.n, dist.min, dist.median, dist.max) == (3, 1.0, 2.0, 3.0)


def test_sorted_runs_give_the_same_percentiles_as_one_sorted_list() -> None:
    rng = random.Random(7)
    values = [rng.randrange(1, 10**6) for _ in range(5_000)]
    runs = SortedRuns()
    for start in range(0, len(values), 700):
        runs.add(values[start : start + 700])
    ordered = sorted(values)
    for fraction in (0.01, 0.5, 0.9, 0.99, 0.999, 1.0):
        assert runs.percentile(fraction) == percentile(ordered, fraction)
    dist = runs.distribution()
    assert (dist.n, dist.min, dist.max) == (5_000, ordered[0], ordered[-1])
    assert dist.p999 == percentile(ordered, 0.999)


def test_a_reservoir_keeps_at_most_its_size_and_counts_what_it_stands_for() -> None:
    reservoir = Reservoir(100, seed=1)
    for item in range(10_000):
        reservoir.add(item)
    assert reservoir.seen == 10_000
    assert len(reservoir.items) == 100 == len(set(reservoir.items))
    # Uniform: the kept items are spread over the whole stream, not its head.
    assert max(reservoir.items) > 5_000 and min(reservoir.items) < 5_000


def test_a_log_histogram_counts_every_value_once() -> None:
    histogram = LogHistogram(buckets_per_decade=1)
    for value in (1.5, 2, 15, 150, 151, 999):
        histogram.add(value)
    assert histogram.buckets() == [(1.0, 10.0, 2), (10.0, 100.0, 1), (100.0, 1000.0, 3)]


def test_it_gives_quartiles_from_four_values_for_the_spread() -> None:
    dist = Distribution.of([1, 2, 3, 4, 5, 6, 7, 8])
    assert (dist.q1, dist.q3) == (2, 6)
    assert {"q1", "q3"} <= set(dist.to_dist())
    few = Distribution.of([5.0, 7.0, 9.0])
    assert few.q1 is None and "q1" not in few.to_dist()

    runs = SortedRuns()
    runs.add([8, 1, 6, 3])
    runs.add([2, 7, 4, 5])
    assert (runs.distribution().q1, runs.distribution().q3) == (dist.q1, dist.q3)
