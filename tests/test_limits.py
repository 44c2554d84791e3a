"""Experiments raise their own sandbox limits only within the operator's ceilings."""

from pathlib import Path

import pytest

from sysops.agent.runner import build_policy
from sysops.experiments import limits
from sysops.models import Run

pytestmark = pytest.mark.django_db

SPAWN_PARAMS = {
    "methods": ["fork_exit"],
    "parent_sizes_mib": [0, 1024],
    "target": "/bin/true",
    "repetitions": 5,
    "warmup": 0,
}


def test_it_clamps_each_request_to_its_ceiling(settings):
    settings.SYSOPS_LIMITS_MAX_NOFILE = 4096
    settings.SYSOPS_LIMITS_MAX_WALL_S = 30.0

    bounded = limits.bounded({"nofile": 100_000, "wall_s": 600.0, "cpu_s": 120})

    assert bounded == {"nofile": 4096, "wall_s": 30.0, "cpu_s": 30}
    assert isinstance(bounded["cpu_s"], int)  # an rlimit stays an int under a float ceiling
    assert limits.bounded({"nofile": 64}) == {"nofile": 64}  # lowering is always allowed


def test_it_refuses_limits_that_are_not_an_experiments_to_set():
    with pytest.raises(ValueError, match="net_raw, sandbox_uid"):
        limits.bounded({"net_raw": False, "sandbox_uid": 0, "nofile": 64})


def test_the_runner_builds_the_policy_within_the_ceilings(settings):
    run = Run(experiment="process-spawn", params=SPAWN_PARAMS)

    policy = build_policy(run, SPAWN_PARAMS, Path("/nonexistent"))
    assert policy.address_space_bytes == (1 << 30) + (1024 << 20)
    assert policy.memory_bytes == (512 << 20) + (1024 << 20)

    settings.SYSOPS_LIMITS_MAX_ADDRESS_SPACE_BYTES = 1 << 30
    settings.SYSOPS_LIMITS_MAX_WALL_S = 5.0
    policy = build_policy(run, SPAWN_PARAMS, Path("/nonexistent"))
    assert policy.address_space_bytes == 1 << 30
    assert policy.wall_s == 5.0


def test_descriptors_raise_the_descriptor_limit_only_when_asked():
    small = {"scenario": "emfile", "count": 1, "nofile": 64}
    large = {**small, "nofile": 20_000}
    assert build_policy(Run(experiment="descriptors"), small, Path("/x")).nofile == 1024
    assert build_policy(Run(experiment="descriptors"), large, Path("/x")).nofile == 20_000
