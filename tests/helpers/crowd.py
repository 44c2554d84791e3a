"""Many people at once against a real server: each signs in and submits at the same moment."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import datetime

from tests.helpers.server import Server

TERMINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def submit_together(
    server: Server, users: list[str], password: str, slug: str, params: Mapping[str, object]
) -> dict[str, int]:
    """Every user signs in, then all submit ``slug`` at once; returns each user's run id."""
    openers = {user: server.opener(user, password) for user in users}
    start = threading.Barrier(len(users))
    run_ids: dict[str, int] = {}
    errors: list[BaseException] = []

    def submit(user: str) -> None:
        try:
            start.wait()
            run_ids[user] = server.queue_run(slug, params, openers[user])
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return run_ids


def wait_finished(server: Server, run_ids: list[int], timeout_s: float) -> list[dict[str, object]]:
    """The rows of ``run_ids`` once all have ended (raises TimeoutError after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = [row for row in server.runs() if row["id"] in run_ids]
        if len(rows) == len(run_ids) and all(row["status"] in TERMINAL for row in rows):
            return rows
        if time.monotonic() > deadline:
            raise TimeoutError(f"not finished: {[(r['id'], r['status']) for r in rows]}")
        time.sleep(0.5)


def _at(value: object) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def most_at_once(rows: list[dict[str, object]]) -> int:
    """The most runs that were running at the same moment."""
    edges = sorted(
        [(_at(row["started_at"]), 1) for row in rows]
        + [(_at(row["finished_at"]), -1) for row in rows]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


def start_order(rows: list[dict[str, object]]) -> list[str]:
    """Whose runs started in which order."""
    return [str(row["username"]) for row in sorted(rows, key=lambda row: _at(row["started_at"]))]
