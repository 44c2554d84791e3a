"""A run that stops early keeps what it measured (marked partial), and a traced run's progress
line is always the measured pass's: real runs of epoll-echo in the real sandbox."""

import threading
import time

import pytest

from sysops.agent.runner import execute
from sysops.models import Run, SampleChunk

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_cancelled_run_keeps_its_chart_points_as_partial_rows():
    params = {"clients": 4, "message_bytes": 512, "duration_s": 30.0, "trigger_mode": "level"}
    run = Run.objects.create(experiment="epoll-echo", params=params, status=Run.Status.RUNNING)
    published = []
    runner = threading.Thread(
        target=execute, args=(run.pk, lambda group, message: published.append(message))
    )
    runner.start()
    deadline = time.monotonic() + 60
    while SampleChunk.objects.filter(run=run).count() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Run.objects.request_cancel(run.pk)
    runner.join(timeout=60)
    assert not runner.is_alive()

    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED, run.reason
    rows = {row["metric"]: row for row in run.results}
    assert rows and all(row["partial"] for row in rows.values())
    points = [s for c in SampleChunk.objects.filter(run=run) for s in c.samples]
    rps = [y for series, _, y in points if series == "requests_per_s"]
    (rps_row,) = [r for r in rows.values() if r["unit"] == "requests/s"]
    assert rps_row["dist"]["n"] == len(rps) and rps_row["dist"]["max"] == max(rps)
    assert "before the run stopped" in rps_row["note"]
    # Viewers got the rows with the final status.
    final = [m for m in published if m.get("status") == Run.Status.CANCELLED]
    assert final and final[-1]["results"] == run.results


def test_a_run_cancelled_in_its_traced_pass_keeps_whole_rows():
    params = {"clients": 4, "message_bytes": 512, "duration_s": 3.0, "trigger_mode": "level"}
    run = Run.objects.create(
        experiment="epoll-echo", params=params, status=Run.Status.RUNNING, trace_mode="full"
    )
    runner = threading.Thread(target=execute, args=(run.pk, lambda group, message: None))
    runner.start()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.trace.get("status") == "tracing":
            break
        time.sleep(0.1)
    assert Run.objects.request_cancel(run.pk)
    runner.join(timeout=90)
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED, run.reason
    rows = {row["metric"]: row for row in run.results}
    assert rows["requests/s"]["value"] > 0
    assert not any(row.get("partial") for row in run.results)


def test_a_traced_runs_progress_line_is_the_measured_passs():
    params = {"clients": 4, "message_bytes": 512, "duration_s": 1.0, "trigger_mode": "level"}
    run = Run.objects.create(
        experiment="epoll-echo", params=params, status=Run.Status.RUNNING, trace_mode="sampled"
    )
    lines = []
    run = execute(
        run.pk, lambda group, message: lines.append(message.get("progress_message") or "")
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    rate = next(r["value"] for r in run.results if r["metric"] == "requests/s")
    # The traced pass runs far slower; its own "N requests/s" never reaches the page.
    assert run.progress_message.endswith("requests/s") and "pass" not in run.progress_message
    during = [line for line in lines if "traced pass" in line]
    assert during and all("· measured: " in line for line in during)
    measured_rate = float(run.progress_message.split(", ")[-1].split()[0].replace(",", ""))
    assert measured_rate > rate / 10  # the same order of magnitude as the measured figure
