"""Database work that waits out an unreachable database (PostgreSQL restarting, a dropped
connection, SQLite's lock held a while) instead of failing: the agent's claims and bookkeeping,
and the runner's writes, so that a database restart costs a run a pause, not its result."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_S = 60.0
FIRST_DELAY_S = 0.25
MAX_DELAY_S = 4.0


def retry_unreachable(fn: Callable[[], T], *, what: str) -> T:
    """``fn()``, tried again on a fresh connection (with back-off, for up to RETRY_S) while the
    database cannot be reached. ``fn`` must be safe to repeat after a failure: one transaction,
    or writes that are conditional. Inside an outer transaction nothing is retried, since that
    transaction is lost with its connection."""
    delay_s = FIRST_DELAY_S
    deadline = time.monotonic() + RETRY_S
    while True:
        try:
            return fn()
        except (OperationalError, InterfaceError) as exc:
            if connection.in_atomic_block or time.monotonic() + delay_s > deadline:
                raise
            log.warning("%s: database unreachable (%s); trying again in %g s", what, exc, delay_s)
            connection.close()
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, MAX_DELAY_S)
