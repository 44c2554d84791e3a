"""raw-icmp's form: every field bounded, each error next to its field, never a run."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysops.experiments import registry
from sysops.models import Run

pytestmark = pytest.mark.django_db

GOOD = {
    "count": "20",
    "payload_bytes": "56",
    "interval_ms": "10",
    "ttl": "64",
    "ip_options": "none",
}
BOUNDS = {
    "count": (1, 1_000),
    "payload_bytes": (0, 1_400),
    "interval_ms": (0, 1_000),
    "ttl": (1, 255),
}
HYPOTHESIS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def post(client, data):
    return client.post("/experiments/raw-icmp/", data)


def assert_refused_at(response, field):
    assert response.status_code == 400
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


def test_it_creates_a_run_for_good_input(client):
    response = post(client, {**GOOD, "hdrincl": "on", "ip_options": "record_route"})
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.experiment == "raw-icmp"
    assert run.params == {
        "count": 20,
        "payload_bytes": 56,
        "interval_ms": 10,
        "ttl": 64,
        "hdrincl": True,
        "ip_options": "record_route",
    }


@pytest.mark.parametrize("field", sorted(BOUNDS))
def test_it_refuses_each_count_just_outside_its_bounds(client, field):
    low, high = BOUNDS[field]
    for value in (low - 1, high + 1):
        assert_refused_at(post(client, {**GOOD, field: str(value)}), field)


@HYPOTHESIS
@given(
    field=st.sampled_from(sorted(BOUNDS)),
    value=st.one_of(
        st.text(alphabet="abc;'<>\" ", min_size=1, max_size=8),
        st.sampled_from(["", "1e999", "NaN", "12abc", "-0.5", "10**9"]),
    ),
)
def test_it_refuses_malformed_numbers(client, field, value):
    assert_refused_at(post(client, {**GOOD, field: value}), field)


def test_it_refuses_an_unknown_ip_option(client):
    assert_refused_at(post(client, {**GOOD, "ip_options": "source_route"}), "ip_options")


def test_it_bounds_the_time_spent_sending(client):
    response = post(client, {**GOOD, "count": "1000", "interval_ms": "61"})
    assert_refused_at(response, "interval_ms")
    assert "keep count × interval at or below 60 s" in response.content.decode()
    assert post(client, {**GOOD, "count": "1000", "interval_ms": "60"}).status_code == 302


def test_the_sampled_pass_is_a_few_echoes():
    experiment = registry.get("raw-icmp")
    params, _, _ = experiment.clean_params({**GOOD, "count": "1000", "interval_ms": "50"})
    assert experiment.sampled_params(params)["count"] == 3
    assert experiment.sampled_params(params)["interval_ms"] == 0
    assert experiment.wall_s(params) <= 120
