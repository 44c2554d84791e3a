import time

from django.db import connection

from sysops.models import Run


def wait_for(run: Run, predicate, timeout_s: float = 90) -> Run:
    """Poll the database until ``predicate(run)`` holds; fail with the run's state if not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if predicate(run):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run.pk} still {run.status}: {run.reason}")


def database_url() -> str:
    """The test database, for processes the test starts (runners, agents, headless commands)."""
    return f"sqlite:///{connection.settings_dict['NAME']}"
