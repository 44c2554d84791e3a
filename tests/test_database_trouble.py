"""A database held by another process, or not writable: a 503 "try again" page for a person,
and a runner that waits its turn instead of failing the run."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection
from django.test import Client

from sysops.agent.recorder import RunRecorder
from sysops.models import Run, SampleChunk

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = {"clients": "2", "message_bytes": "64", "duration_s": "1"}
BUSY_TIMEOUT_S = 1
LOCK_HELD_S = 4

HOLD_LOCK = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("COMMIT")
"""


@pytest.fixture
def short_busy_timeout() -> Iterator[None]:
    """This process gives up on a lock after a second (the server waits 20 s), so that the
    tests see "database is locked" quickly."""
    options = connection.settings_dict["OPTIONS"]
    saved = options.get("timeout")
    options["timeout"] = BUSY_TIMEOUT_S
    connection.close()
    yield
    options["timeout"] = saved
    connection.close()


@contextlib.contextmanager
def write_lock_held_elsewhere() -> Iterator[subprocess.Popen[str]]:
    """Another process holds the database's write lock until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, connection.settings_dict["NAME"]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_submit_while_another_process_writes_gets_503_try_again(short_busy_timeout):
    client = Client(raise_request_exception=False)
    with write_lock_held_elsewhere():
        response = client.post("/experiments/epoll-echo/", ECHO)
    assert response.status_code == 503
    assert response["Retry-After"]
    body = response.content.decode()
    assert "Try again" in body and "write lock" in body
    assert not Run.objects.exists()
    # Once the lock is gone, the same submit works.
    assert client.post("/experiments/epoll-echo/", ECHO).status_code == 302


def test_a_read_only_database_gets_503(short_busy_timeout):
    settings_dict = connection.settings_dict
    path = settings_dict["NAME"]
    settings_dict["NAME"] = f"file:{path}?mode=ro"
    connection.close()
    try:
        response = Client(raise_request_exception=False).post("/experiments/epoll-echo/", ECHO)
    finally:
        settings_dict["NAME"] = path
        connection.close()
    assert response.status_code == 503
    assert "cannot be written" in response.content.decode()
    assert not Run.objects.exists()


def test_the_runner_waits_out_a_lock_instead_of_failing_the_run(short_busy_timeout, caplog):
    run = Run.objects.create(experiment="epoll-echo", params={}, status=Run.Status.RUNNING)
    published: list[tuple[str, dict]] = []
    recorder = RunRecorder(run, lambda group, message: published.append((group, message)))
    recorder.on_event({"type": "sample", "series": "s", "x": 1, "y": 2})
    with write_lock_held_elsewhere() as holder:
        threading.Timer(LOCK_HELD_S, holder.stdin.close).start()
        started = time.monotonic()
        recorder.flush(force=True)
        waited_s = time.monotonic() - started
    assert waited_s >= BUSY_TIMEOUT_S  # it met the lock, and waited
    assert "database busy" in caplog.text
    assert list(SampleChunk.objects.filter(run=run).values_list("samples", flat=True)) == [
        [["s", 1, 2]]
    ]
    assert [m["seq"] for _, m in published if m.get("type") == "run.batch"] == [1]
    finished = recorder.finish(Run.Status.SUCCEEDED, "done")
    assert finished.status == Run.Status.SUCCEEDED


def test_other_database_errors_stay_a_500():
    from django.db import OperationalError
    from django.test import RequestFactory

    from sysops.errors import server_error

    try:
        raise OperationalError("no such table: sysops_run")
    except OperationalError:
        response = server_error(RequestFactory().get("/"))
    assert response.status_code == 500
