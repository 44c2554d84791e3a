"""Eight users submit a small run at the same moment, against a real daphne with its embedded
agent: time until all have finished, the order they started in, each run's wait in the queue
and its own duration, and any "database is locked" anywhere (runner retries included)."""

from __future__ import annotations

import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.crowd import most_at_once, start_order, submit_together, wait_finished  # noqa: E402
from tests.helpers.server import daphne_server  # noqa: E402

USERS = [f"user{n}" for n in range(8)]
PASSWORD = "correct horse battery"
PARAMS = {"samples": 2000}
TIMEOUT_S = 900


def _at(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def main() -> None:
    env = {"SYSOPS_REQUIRE_LOGIN": "1"}
    with daphne_server(env) as server:
        server.create_users(USERS, PASSWORD)
        started = time.monotonic()
        run_ids = submit_together(server, USERS, PASSWORD, "synthetic", PARAMS)
        submitted_s = time.monotonic() - started
        rows = wait_finished(server, list(run_ids.values()), TIMEOUT_S)
        all_done_s = time.monotonic() - started
        locked = sum("locked" in message for message in server.run_logs())
        retries = (server.var_dir / "server.log").read_text().count("database busy")
    waits = [_at(r["started_at"]) - _at(r["created_at"]) for r in rows]
    runs = [_at(r["finished_at"]) - _at(r["started_at"]) for r in rows]
    statuses = sorted({str(r["status"]) for r in rows})
    print(f"{len(USERS)} users, one synthetic run each ({PARAMS}), submitted at once")
    print(
        f"  all {len(USERS)} submits answered in {submitted_s:.2f} s; all runs finished after "
        f"{all_done_s:.1f} s; statuses: {', '.join(statuses)}"
    )
    print(
        f"  start order: {', '.join(start_order(rows))} (queue order: "
        f"{', '.join(str(r['username']) for r in sorted(rows, key=lambda r: r['id']))})"
    )
    print(f"  at most {most_at_once(rows)} running at once")
    print(
        f"  wait in queue: median {statistics.median(waits):.1f} s, max {max(waits):.1f} s; "
        f"run: median {statistics.median(runs):.1f} s, max {max(runs):.1f} s"
    )
    print(f"  'database is locked' in run logs: {locked}; busy-database retries: {retries}")


if __name__ == "__main__":
    main()
