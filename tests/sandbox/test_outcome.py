"""Outcome.describe(): how a run ended, in words."""

from __future__ import annotations

from sysops.sandbox import Outcome


def test_it_describes_a_clean_exit():
    assert Outcome(exit_code=0, signal=None).describe() == "exited with status 0"


def test_it_names_the_limit_behind_a_signal():
    outcome = Outcome(exit_code=None, signal="SIGXCPU", limits_hit=["RLIMIT_CPU 30 s"])

    assert outcome.describe() == "killed by SIGXCPU: RLIMIT_CPU 30 s"


def test_it_says_when_the_caller_killed_the_run():
    outcome = Outcome(exit_code=None, signal="SIGKILL", killed_by_caller=True)

    assert outcome.describe() == "killed by SIGKILL (stopped by the caller)"


def test_it_names_a_limit_hit_by_a_run_that_exited():
    outcome = Outcome(exit_code=0, signal=None, limits_hit=["RLIMIT_NPROC 64 processes"])

    assert outcome.describe() == "exited with status 0 after hitting RLIMIT_NPROC 64 processes"


def test_its_dict_carries_the_reason():
    outcome = Outcome(exit_code=None, signal="SIGKILL", limits_hit=["wall clock 60 s"])

    assert outcome.to_dict()["reason"] == "killed by SIGKILL: wall clock 60 s"
