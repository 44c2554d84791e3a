"""Fixtures of the scaled-mode tests: a private PostgreSQL and Redis for the whole session
(tests/scaled/services.py), a fresh database per test, and the scaled-mode processes.

Every test in this directory is marked ``scaled``. Where the servers' packages are missing (a
developer without root) these tests skip and say why; under CI (``CI=true``) they fail instead,
since ``make test`` installs the packages there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scaled import services

HERE = Path(__file__).resolve().parent
# The alias under which a test's PostgreSQL database is reachable from the test process's ORM.
SCALED_ALIAS = "scaled"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.scaled)


@pytest.fixture(scope="session")
def scaled_services() -> Iterator[services.Services]:
    """PostgreSQL and Redis of this session's own, stopped and removed after it."""
    reason = services.missing()
    if reason is not None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"scaled-mode tests cannot run under CI: {reason}", pytrace=False)
        pytest.skip(f"scaled-mode tests: {reason}")
    with services.Services.running() as running:
        yield running


@pytest.fixture
def scaled_stack(scaled_services: services.Services) -> Iterator[services.Stack]:
    """A fresh migrated database and an empty Redis; every process the test starts on it is
    stopped after the test (SIGTERM, then SIGKILL)."""
    stack = scaled_services.new_stack()
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture
def scaled_db(scaled_stack: services.Stack, django_db_blocker: object) -> Iterator[str]:
    """The test's PostgreSQL database as a Django alias (``Run.objects.using(scaled_db)``)."""
    import dj_database_url
    from django.db import DEFAULT_DB_ALIAS, connections

    config = dj_database_url.parse(scaled_stack.database_url, conn_max_age=0)
    configured = connections.configure_settings(
        {DEFAULT_DB_ALIAS: dict(connections.settings[DEFAULT_DB_ALIAS]), SCALED_ALIAS: config}
    )
    connections.settings[SCALED_ALIAS] = configured[SCALED_ALIAS]
    try:
        with django_db_blocker.unblock():  # type: ignore[attr-defined]
            yield SCALED_ALIAS
    finally:
        connections[SCALED_ALIAS].close()
        del connections[SCALED_ALIAS]
        del connections.settings[SCALED_ALIAS]
