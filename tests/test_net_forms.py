"""tcp and socket-options: bad input is a field error next to the field, never a run."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysops.models import Run

pytestmark = pytest.mark.django_db

GOOD_TCP = {
    "measurement": "rtt",
    "message_bytes": "64",
    "count": "1000",
    "duration_s": "1",
    "layers": ["python", "native"],
}
GOOD_OPTIONS = {"scenarios": ["nodelay", "linger"], "exchanges": "10", "keepidle_s": "1"}
HYPOTHESIS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
bad_value = st.one_of(
    st.integers(max_value=0).map(str),
    st.integers(min_value=10**7).map(str),
    st.sampled_from(["", "abc", "1e999", "NaN", "-", "3.5.1"]),
)


def post(client, slug, data):
    return client.post(f"/experiments/{slug}/", data)


def assert_field_error(response, field):
    assert response.status_code == 400
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


def test_it_creates_a_tcp_run_for_good_input(client):
    assert post(client, "tcp", GOOD_TCP).status_code == 302
    run = Run.objects.get()
    assert run.params["measurement"] == "rtt" and run.params["layers"] == ["python", "native"]


@HYPOTHESIS
@given(field=st.sampled_from(["message_bytes", "count", "duration_s"]), value=bad_value)
def test_it_rejects_out_of_range_tcp_parameters(client, field, value):
    assert_field_error(post(client, "tcp", {**GOOD_TCP, field: value}), field)


def test_it_bounds_connections(client):
    data = {**GOOD_TCP, "measurement": "connect", "count": "100001"}
    assert_field_error(post(client, "tcp", data), "count")


def test_it_refuses_a_full_trace_over_the_cap(client):
    data = {**GOOD_TCP, "count": "1000000", "trace": "full"}
    assert_field_error(post(client, "tcp", data), "trace")


def test_it_rejects_an_unknown_measurement_or_layer(client):
    assert_field_error(post(client, "tcp", {**GOOD_TCP, "measurement": "udp"}), "measurement")
    assert_field_error(post(client, "tcp", {**GOOD_TCP, "layers": ["asm"]}), "layers")


def test_it_creates_a_socket_options_run_for_good_input(client):
    assert post(client, "socket-options", GOOD_OPTIONS).status_code == 302
    assert Run.objects.get().params["scenarios"] == ["nodelay", "linger"]


@HYPOTHESIS
@given(field=st.sampled_from(["exchanges", "keepidle_s"]), value=bad_value)
def test_it_rejects_out_of_range_socket_option_parameters(client, field, value):
    assert_field_error(post(client, "socket-options", {**GOOD_OPTIONS, field: value}), field)


def test_it_needs_a_known_scenario(client):
    data = {**GOOD_OPTIONS, "scenarios": []}
    assert_field_error(post(client, "socket-options", data), "scenarios")
    data = {**GOOD_OPTIONS, "scenarios": ["SO_EVIL"]}
    assert_field_error(post(client, "socket-options", data), "scenarios")
