"""Eight people submit at the same moment on a two-core machine: every run finishes, they
start in the order they were queued, at most SYSOPS_MAX_RUNNING at once, and no write ever
meets "database is locked"."""

from __future__ import annotations

from tests.helpers.crowd import most_at_once, start_order, submit_together, wait_finished
from tests.helpers.server import daphne_server

USERS = [f"user{n}" for n in range(8)]
PASSWORD = "correct horse battery"
MAX_RUNNING = 2
RUNS_TIMEOUT_S = 600


def test_eight_users_at_once_all_finish_in_order_without_lock_errors():
    env = {"SYSOPS_REQUIRE_LOGIN": "1", "SYSOPS_MAX_RUNNING": str(MAX_RUNNING)}
    with daphne_server(env) as server:
        server.create_users(USERS, PASSWORD)
        run_ids = submit_together(server, USERS, PASSWORD, "synthetic", {"samples": 2000})
        rows = wait_finished(server, list(run_ids.values()), RUNS_TIMEOUT_S)
        logs = server.run_logs()
    assert sorted(row["username"] for row in rows) == USERS  # each user's one run
    assert {row["status"] for row in rows} == {"succeeded"}, [(r["id"], r["reason"]) for r in rows]
    # Claimed in the order queued (one run each: any order of users is fair).
    by_id = sorted(rows, key=lambda row: row["id"])
    assert start_order(rows) == [row["username"] for row in by_id]
    assert most_at_once(rows) <= MAX_RUNNING
    assert not any("locked" in message for message in logs)
    assert not any("locked" in str(row["reason"]) for row in rows)
