"""The claim under PostgreSQL: the same fair order as on SQLite, one statement that locks the
row it takes (SKIP LOCKED), so two transactions never wait on or take the same run."""

from django.db import transaction

from sysops.models import Run
from tests.helpers import fair


def test_it_takes_turns_between_owners(scaled_db):
    fair.check_round_robin_by_owner(scaled_db)


def test_it_puts_owners_with_running_runs_behind(scaled_db):
    fair.check_running_runs_count_against_their_owner(scaled_db)


def test_it_claims_pinned_runs_only_on_their_host(scaled_db):
    fair.check_pinned_runs_go_to_their_host(scaled_db)


def test_anonymous_runs_take_turns_by_client_address(scaled_db):
    fair.check_anonymous_runs_take_turns_by_address(scaled_db)


def test_a_run_locked_by_an_open_claim_is_skipped_not_waited_for(scaled_db, scaled_stack):
    import psycopg

    first, second = fair.queue(scaled_db, None, 2)
    # Another agent's claim, caught between its SELECT … FOR UPDATE SKIP LOCKED and its UPDATE.
    with psycopg.connect(scaled_stack.database_url) as other:
        locked = other.execute(
            "SELECT id FROM sysops_run WHERE status = 'queued' ORDER BY id LIMIT 1 "
            "FOR UPDATE SKIP LOCKED"
        ).fetchone()
        assert locked == (first,)
        with transaction.atomic(using=scaled_db):
            assert Run.objects.using(scaled_db).claim_next(by="b:1", host_name="h") == second
        assert Run.objects.using(scaled_db).claim_next(by="b:1", host_name="h") is None
