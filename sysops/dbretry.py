"""Writes that wait out a busy database instead of failing what they record.

SQLite allows one writer at a time: its busy timeout (settings) covers a short wait, but another
process may hold the write lock longer (a backup, an operator's sqlite3 shell). A runner's
batches must still land, so its writes are retried with backoff for a long while.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_FOR_S = 300.0
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 2.0


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


def retry_busy(fn: Callable[[], T], *, what: str, retry_for_s: float = RETRY_FOR_S) -> T:
    """``fn()``, called again with backoff while the database is busy; ``fn`` must be a whole
    transaction (called outside any), so that a retry repeats all of it."""
    deadline = time.monotonic() + retry_for_s
    delay_s = FIRST_DELAY_S
    while True:
        try:
            return fn()
        except OperationalError as exc:
            if not is_busy(exc) or time.monotonic() + delay_s > deadline:
                raise
            log.warning("%s: database busy (%s); retrying in %.2f s", what, exc, delay_s)
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, MAX_DELAY_S)
