"""The run page of a timing experiment states what the sandbox's seccomp filter adds to each
syscall on this host (measured for real, once per process); a run that counts things does not."""

import pytest

from sysops.models import Run
from sysops.sandbox.filter_cost import cached_filter_cost

pytestmark = pytest.mark.django_db


def test_a_timing_run_states_the_filters_cost_per_call(client):
    cost = cached_filter_cost()
    assert cost is not None and cost.instructions > 0
    run = Run.objects.create(
        experiment="syscall-cost",
        params={"call": "getppid", "layers": ["native"], "iterations": 1000, "repetitions": 5},
        status=Run.Status.SUCCEEDED,
        results=[{"metric": "native", "value": 80.0, "unit": "ns/call", "note": ""}],
    )
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="run-filter-cost"' in page
    assert f"{cost.added_ns:.1f} ns per call" in page


def test_a_run_that_counts_descriptors_does_not(client):
    run = Run.objects.create(
        experiment="descriptors",
        params={},
        status=Run.Status.SUCCEEDED,
        results=[{"metric": "open descriptors", "value": 1024, "unit": "descriptors"}],
    )
    assert 'id="run-filter-cost"' not in client.get(f"/runs/{run.pk}/").content.decode()
