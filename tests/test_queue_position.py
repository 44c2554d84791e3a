"""A queued run's page says how many runs are ahead of it."""

import pytest

from sysops.agent.agent import Agent
from sysops.models import Run

pytestmark = pytest.mark.django_db

PARAMS = {"samples": 3}


def test_it_shows_the_runs_ahead_and_moves_up_when_one_is_claimed(client):
    first, second, third = (
        Run.objects.create(experiment="synthetic", params=PARAMS) for _ in "abc"
    )

    assert "2 runs ahead of it" in client.get(f"/runs/{third.pk}/").content.decode()
    assert "next to start" in client.get(f"/runs/{first.pk}/").content.decode()

    assert Agent(max_running=1).claim_next() == first.pk
    assert "1 run ahead of it" in client.get(f"/runs/{third.pk}/").content.decode()
    assert "ahead of it" not in client.get(f"/runs/{first.pk}/").content.decode()
    assert (second.queue_position, third.queue_position) == (1, 2)
