"""Bad input is a field error next to the field, never a crash and never a run."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysops.models import Run

pytestmark = pytest.mark.django_db

GOOD_COST = {
    "call": "getppid",
    "layers": ["python", "native"],
    "iterations": "1000",
    "repetitions": "5",
    "warmup": "0",
}
GOOD_ECHO = {"clients": "4", "message_bytes": "64", "duration_s": "1"}
HYPOTHESIS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

out_of_range_int = st.one_of(
    st.integers(max_value=-1), st.integers(min_value=10**7), st.just(0)
).map(str)
malformed = st.one_of(
    st.text(alphabet="abcxyz!@ ;'\"<>", min_size=1, max_size=12),
    st.just("1e999"),
    st.just("NaN"),
    st.just("12abc"),
    st.just(""),
)


def post(client, slug, data):
    return client.post(f"/experiments/{slug}/", data)


def test_it_creates_a_run_for_good_input(client):
    response = post(client, "syscall-cost", GOOD_COST)
    assert response.status_code == 302
    run = Run.objects.get()
    assert response["Location"] == f"/runs/{run.pk}/"
    assert run.params["layers"] == ["python", "native"]
    assert run.params["iterations"] == 1000


@HYPOTHESIS
@given(field=st.sampled_from(["iterations", "repetitions", "warmup"]), value=out_of_range_int)
def test_it_rejects_out_of_range_counts(client, field, value):
    if field == "warmup" and value == "0":
        return  # zero warm-up is allowed
    response = post(client, "syscall-cost", {**GOOD_COST, field: value})
    assert response.status_code == 400
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


@HYPOTHESIS
@given(field=st.sampled_from(["clients", "message_bytes", "duration_s"]), value=malformed)
def test_it_rejects_malformed_echo_parameters(client, field, value):
    response = post(client, "epoll-echo", {**GOOD_ECHO, field: value})
    assert response.status_code == 400
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


@HYPOTHESIS
@given(
    clients=st.integers(min_value=257, max_value=10**9),
    size=st.integers(min_value=65_537, max_value=10**12),
    duration=st.floats(min_value=60.001, max_value=1e9, allow_nan=False),
)
def test_it_bounds_the_echo_load(client, clients, size, duration):
    for field, value in (("clients", clients), ("message_bytes", size), ("duration_s", duration)):
        response = post(client, "epoll-echo", {**GOOD_ECHO, field: str(value)})
        assert response.status_code == 400
        assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


def test_it_rejects_the_vdso_layer_for_a_real_syscall(client):
    response = post(client, "syscall-cost", {**GOOD_COST, "layers": ["vdso"]})
    assert response.status_code == 400
    assert "applies only to clock_gettime" in response.content.decode()
    assert not Run.objects.exists()


def test_it_bounds_the_total_number_of_calls(client):
    data = {**GOOD_COST, "iterations": "1000000", "repetitions": "500", "warmup": "20"}
    response = post(client, "syscall-cost", data)
    assert response.status_code == 400
    assert 'id="error-iterations"' in response.content.decode()
    assert not Run.objects.exists()


def test_it_rejects_an_unknown_choice(client):
    response = post(client, "syscall-cost", {**GOOD_COST, "call": "reboot"})
    assert response.status_code == 400
    assert 'id="error-call"' in response.content.decode()
    assert not Run.objects.exists()


def test_a_full_trace_over_the_event_cap_is_refused_next_to_the_trace_field(client):
    data = {**GOOD_COST, "iterations": "100000", "repetitions": "30", "trace": "full"}
    response = post(client, "syscall-cost", data)
    assert response.status_code == 400
    assert 'id="error-trace"' in response.content.decode()
    assert not Run.objects.exists()
    response = post(client, "syscall-cost", {**data, "trace": "sampled"})
    assert response.status_code == 302
    assert Run.objects.get().trace_mode == "sampled"


GOOD_IOMUX = {
    "mechanisms": ["select", "poll", "epoll_lt", "epoll_et"],
    "counts": "1, 10, 100",
    "active": "1",
    "layers": ["native"],
    "calls": "100",
}


def test_it_takes_descriptor_counts_as_a_list(client):
    response = post(client, "io-multiplexing", {**GOOD_IOMUX, "counts": "100, 10,1000"})
    assert response.status_code == 302
    assert Run.objects.get().params["counts"] == [10, 100, 1000]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("counts", "10, ten", "whole numbers separated by commas"),
        ("counts", "0, 10", "between 1 and 10000"),
        ("counts", "10001", "between 1 and 10000"),
        ("counts", "1,2,3,4,5,6,7,8,9", "Give 1 to 8 different values"),
        ("counts", "", "required"),
        ("active", "65", "less than or equal to 64"),
        ("active", "2", "smallest count (1)"),
        ("calls", "20000", "at or below"),
        ("mechanisms", ["kqueue"], "Select a valid choice"),
    ],
)
def test_it_rejects_bad_multiplexing_parameters(client, field, value, message):
    data = {**GOOD_IOMUX, field: value}
    if field == "calls":
        data["counts"] = "10000, 5000"
    response = post(client, "io-multiplexing", data)
    body = response.content.decode()
    assert response.status_code == 400
    assert f'id="error-{field}"' in body
    assert message in body
    assert not Run.objects.exists()


def test_it_refuses_a_full_multiplexing_trace_over_the_cap(client, settings):
    settings.SYSOPS_TRACE_MAX_EVENTS = 1_000
    response = post(client, "io-multiplexing", {**GOOD_IOMUX, "trace": "full"})
    assert response.status_code == 400
    assert 'id="error-trace"' in response.content.decode()
    response = post(client, "io-multiplexing", {**GOOD_IOMUX, "trace": "sampled"})
    assert response.status_code == 302


def test_the_echo_trigger_mode_is_level_or_edge(client):
    response = post(client, "epoll-echo", {**GOOD_ECHO, "trigger_mode": "oneshot"})
    assert response.status_code == 400
    assert 'id="error-trigger_mode"' in response.content.decode()
    assert post(client, "epoll-echo", GOOD_ECHO).status_code == 302
    assert Run.objects.get().params["trigger_mode"] == "level"  # the default, as before
