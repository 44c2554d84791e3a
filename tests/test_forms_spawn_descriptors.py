"""process-spawn and descriptors: bad input is a field error next to the field, never a run."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sysops.models import Run
from tests.test_forms import HYPOTHESIS, post

pytestmark = pytest.mark.django_db

GOOD_SPAWN = {
    "methods": ["fork_exit", "posix_spawn"],
    "parent_sizes_mib": "0, 64",
    "target": "/bin/true",
    "repetitions": "5",
    "warmup": "1",
}
GOOD_FDS = {"scenario": "emfile", "count": "100", "nofile": "256"}


def assert_refused(response, field, text=""):
    assert response.status_code == 400
    body = response.content.decode()
    assert f'id="error-{field}"' in body
    assert text in body
    assert not Run.objects.exists()


def test_it_creates_a_spawn_run_with_the_sizes_as_a_list(client):
    response = post(client, "process-spawn", {**GOOD_SPAWN, "parent_sizes_mib": "64,0 , 64, 8"})
    assert response.status_code == 302
    assert Run.objects.get().params["parent_sizes_mib"] == [0, 8, 64]


@HYPOTHESIS
@given(
    sizes=st.one_of(
        st.just("0"),  # one size is not a sweep
        st.just("0, 2048"),
        st.just("-1, 5"),
        st.just("0,1,2,3,4,5,6,7,8"),
        st.just("a, b"),
        st.just(""),
        st.text(alphabet="0123456789,; x", min_size=201, max_size=220),
    )
)
def test_it_refuses_bad_parent_sizes(client, sizes):
    assert_refused(
        post(client, "process-spawn", {**GOOD_SPAWN, "parent_sizes_mib": sizes}), "parent_sizes_mib"
    )


def test_a_parent_over_the_runs_memory_limit_is_a_field_error(client, settings):
    settings.SYSOPS_LIMITS_MAX_MEMORY_BYTES = 768 << 20
    response = post(client, "process-spawn", {**GOOD_SPAWN, "parent_sizes_mib": "0, 512"})
    assert_refused(response, "parent_sizes_mib", "needs a memory limit of 1024 MiB")
    assert "SYSOPS_LIMITS_MAX_MEMORY_BYTES" in response.content.decode()


def test_too_much_spawning_for_the_wall_limit_is_a_field_error(client, settings):
    settings.SYSOPS_LIMITS_MAX_WALL_S = 60.0
    data = {**GOOD_SPAWN, "parent_sizes_mib": "0, 1024", "repetitions": "200"}
    assert_refused(post(client, "process-spawn", data), "repetitions", "limit for a run")


def test_it_refuses_an_unknown_method_or_target(client):
    assert_refused(post(client, "process-spawn", {**GOOD_SPAWN, "methods": ["clone"]}), "methods")
    assert_refused(post(client, "process-spawn", {**GOOD_SPAWN, "target": "/bin/sh"}), "target")


@HYPOTHESIS
@given(
    field=st.sampled_from(["count", "nofile"]),
    value=st.one_of(
        st.integers(max_value=0), st.integers(min_value=100_001), st.just("x"), st.just("")
    ).map(str),
)
def test_it_refuses_out_of_range_descriptor_parameters(client, field, value):
    assert_refused(post(client, "descriptors", {**GOOD_FDS, field: value}), field)


def test_a_limit_over_the_servers_ceiling_is_a_field_error(client, settings):
    settings.SYSOPS_LIMITS_MAX_NOFILE = 4096
    response = post(client, "descriptors", {**GOOD_FDS, "nofile": "8192"})
    assert_refused(response, "nofile", "at most 4,096 descriptors")
