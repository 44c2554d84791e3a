"""Whatever a worker writes on its events fd, through the real runner and sandbox: the runner
stays linear and bounded (caps by count, rows appended in place), survives bad lines, stores
only what validates, and the run page renders."""

import socket

import pytest

from sysops.agent.recorder import MAX_RESULT_ROWS
from sysops.agent.runner import execute
from sysops.models import Run, RunLog

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = {"sleep_s": 0, "path": "", "wall_s": 60, "cpu_s": 30}
PAGE_MAX_BYTES = 1 << 20


def run_hostile(case, **params):
    run = Run.objects.create(
        experiment="hostile",
        params={**HOSTILE, "case": case, **params},
        status=Run.Status.RUNNING,
    )
    return execute(run.pk, lambda group, message: None)


def test_a_flood_of_tiny_results_stops_at_the_event_cap(settings, client):
    settings.SYSOPS_OUTPUT_CAP_BYTES = 256 << 20  # the count cap, not the byte cap, must act
    settings.SYSOPS_MAX_EVENTS = 100_000

    run = run_hostile("event_flood", count=300_000)

    assert run.status == Run.Status.FAILED
    assert run.reason == "event cap of 100,000 events exceeded"
    assert len(run.results) == MAX_RESULT_ROWS
    assert run.logs.filter(
        message__startswith=f"more than {MAX_RESULT_ROWS} result rows or"
    ).exists()
    page = client.get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    assert len(page.content) < PAGE_MAX_BYTES


def test_rows_past_the_cap_are_dropped_and_the_run_still_succeeds(client):
    run = run_hostile("event_flood", count=5_000)

    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert len(run.results) == MAX_RESULT_ROWS
    assert client.get(f"/runs/{run.pk}/").status_code == 200


def test_bad_lines_are_errors_of_the_run_and_the_page_renders(client):
    run = run_hostile("bad_events")

    # The lines after the bad ones arrived: a 200,000-deep line did not kill the runner.
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert [row["metric"] for row in run.results] == ["after the bad lines"]
    errors = list(run.logs.filter(level=RunLog.Level.ERROR).values_list("message", flat=True))
    assert sum(e.startswith("malformed event (nested too deeply)") for e in errors) == 2
    assert any(e.startswith("bad hello event: host.mitigations must be an object") for e in errors)
    assert any(e.startswith("result row dropped: row 0 is not an object") for e in errors)
    assert any(e.startswith("result row dropped: row 0 dist must be an object") for e in errors)
    assert any(e.startswith("bad sample event: x must be a finite number") for e in errors)
    assert run.logs.filter(message="nul \ufffd and lone ? surrogate").exists()
    # The partial fingerprint was stored with every field, so the page's lookups resolve.
    assert run.host is not None
    assert run.host.fingerprint["cores"] == {"online": 2, "usable": None}
    # Whatever the worker says, the host is the one its runner ran on.
    assert run.host.fingerprint["hostname"] == socket.gethostname()
    page = client.get(f"/runs/{run.pk}/")
    assert page.status_code == 200
    assert client.get("/").status_code == 200
