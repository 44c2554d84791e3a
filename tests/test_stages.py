"""Stage timestamps: several writers, the first time a stage is reached stays."""

import pytest

from sysops import stages
from sysops.models import Run

pytestmark = pytest.mark.django_db


def test_it_merges_stages_and_keeps_the_first_of_each():
    run = Run.objects.create(experiment="syscall-cost", params={}, stages={"post": 100})

    stages.mark(run.pk, {"committed": 200, "post": 999})
    stages.mark(run.pk, {"claimed": 300, "committed": 888})

    run.refresh_from_db()
    assert run.stages == {"post": 100, "committed": 200, "claimed": 300}


def test_it_refuses_a_stage_it_does_not_know():
    run = Run.objects.create(experiment="syscall-cost", params={})
    with pytest.raises(ValueError):
        stages.mark(run.pk, {"lunch": 1})


def test_the_timeline_is_in_stage_order_with_deltas_in_ms():
    steps = stages.timeline({"hello": 9_000_000, "post": 1_000_000, "claimed": 4_000_000})
    assert [(s.name, s.since_start_ms, s.since_previous_ms) for s in steps] == [
        ("post", 0.0, 0.0),
        ("claimed", 3.0, 3.0),
        ("hello", 8.0, 5.0),
    ]
