"""Database writes that wait out a busy or unreachable database instead of failing what they
record: the agent's claims and bookkeeping, and the runner's writes.

- Busy: SQLite allows one writer at a time; its busy timeout (settings) covers a short wait, but
  another process may hold the write lock longer (a backup, an operator's sqlite3 shell).
- Unreachable: PostgreSQL restarting, a dropped connection; the next try uses a fresh one.

Either way a runner's batches must still land, so a database outage costs a run a pause, not
its result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_FOR_S = 300.0
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 4.0


def is_busy(exc: BaseException) -> bool:
    """The database is locked by another writer (SQLite) or a lock wait failed (PostgreSQL)."""
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and ("locked" in text or "busy" in text)


# What SQLite (and PostgreSQL, for a read-only transaction or a full disk) say when the
# database cannot be written at all.
_UNWRITABLE = ("readonly", "read-only", "disk i/o", "disk is full", "unable to open")


def is_unwritable(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and any(words in text for words in _UNWRITABLE)


def retry_db(fn: Callable[[], T], *, what: str, retry_for_s: float = RETRY_FOR_S) -> T:
    """``fn()``, called again with back-off while the database is busy or cannot be reached (on
    a fresh connection then). ``fn`` must be safe to repeat after a failure: one whole
    transaction (called outside any), or writes that are conditional. Inside an outer
    transaction nothing is retried, since that transaction is lost with its connection; a
    database that cannot be written at all is not waited for."""
    deadline = time.monotonic() + retry_for_s
    delay_s = FIRST_DELAY_S
    while True:
        try:
            return fn()
        except (OperationalError, InterfaceError) as exc:
            if (
                connection.in_atomic_block
                or is_unwritable(exc)
                or time.monotonic() + delay_s > deadline
            ):
                raise
            if is_busy(exc):
                log.warning("%s: database busy (%s); retrying in %.2f s", what, exc, delay_s)
            else:
                log.warning("%s: database unreachable (%s); retrying in %.2f s", what, exc, delay_s)
                connection.close()
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, MAX_DELAY_S)
