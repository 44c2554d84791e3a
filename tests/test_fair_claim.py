"""The claim order on SQLite: round-robin by owner, pinned runs only on their host.
tests/scaled/test_claim_postgres.py checks the same against PostgreSQL."""

import pytest

from tests.helpers import fair

pytestmark = pytest.mark.django_db


def test_it_takes_turns_between_owners():
    fair.check_round_robin_by_owner("default")


def test_it_puts_owners_with_running_runs_behind():
    fair.check_running_runs_count_against_their_owner("default")


def test_it_claims_pinned_runs_only_on_their_host():
    fair.check_pinned_runs_go_to_their_host("default")


def test_anonymous_runs_take_turns_by_client_address():
    fair.check_anonymous_runs_take_turns_by_address("default")
