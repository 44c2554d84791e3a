"""One run lifecycle: every status change is a conditional update on the model's queryset, and
the first terminal state stays, whoever writes second."""

import re
from pathlib import Path

import pytest
from django.utils import timezone

from sysops.agent.agent import Agent
from sysops.agent.recorder import RunRecorder
from sysops.models import Run, RunLog

pytestmark = pytest.mark.django_db(transaction=True)
SYSOPS_DIR = Path(__file__).resolve().parents[1] / "sysops"
STATUS_WRITE = re.compile(
    r"\.update\([^)]*\bstatus=|\brun\.status\s*=[^=]|status=Run\.Status\.\w+,\n"
)


def running_run(**fields):
    return Run.objects.create(
        experiment="syscall-cost", params={}, status=Run.Status.RUNNING, **fields
    )


def test_recovery_then_a_finishing_runner_keeps_the_recovery_verdict():
    run = running_run(
        claimed_by="elsewhere:1", heartbeat_at=timezone.now() - timezone.timedelta(minutes=5)
    )
    published = []
    recorder = RunRecorder(Run.objects.get(pk=run.pk), lambda g, m: published.append(m))

    assert Agent().recover_stale() == [run.pk]
    final = recorder.finish(Run.Status.SUCCEEDED, "exited with status 0")

    run.refresh_from_db()
    assert run.status == final.status == Run.Status.FAILED
    assert "runner silent" in run.reason and run.progress != 1.0
    last = [m for m in published if m["type"] == "run.batch"][-1]
    assert last["status"] == Run.Status.FAILED and last["status_changed"]
    warning = RunLog.objects.get(run=run, level=RunLog.Level.WARNING)
    assert "succeeded: exited with status 0" in warning.message


def test_a_finished_run_is_not_recovered_again():
    run = running_run(claimed_by="elsewhere:1", heartbeat_at=timezone.now())
    RunRecorder(Run.objects.get(pk=run.pk), lambda g, m: None).finish(
        Run.Status.SUCCEEDED, "exited with status 0"
    )
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timezone.timedelta(hours=1))

    assert Agent().recover_stale() == []
    run.refresh_from_db()
    assert (run.status, run.progress) == (Run.Status.SUCCEEDED, 1.0)


def test_each_transition_happens_only_from_its_state():
    queued = Run.objects.create(experiment="syscall-cost", params={})
    assert not Run.objects.finish(queued.pk, Run.Status.FAILED, "x")  # not running yet
    assert Run.objects.claim(queued.pk, by="a")
    assert not Run.objects.claim(queued.pk, by="b")  # claimed once
    assert not Run.objects.cancel_queued(queued.pk)  # running: a cancel is a request
    assert Run.objects.request_cancel(queued.pk)
    assert Run.objects.finish(queued.pk, Run.Status.CANCELLED, "cancelled by the user")
    assert not Run.objects.finish(queued.pk, Run.Status.FAILED, "late")
    assert not Run.objects.request_cancel(queued.pk)
    queued.refresh_from_db()
    assert (queued.status, queued.claimed_by, queued.reason) == (
        Run.Status.CANCELLED,
        "a",
        "cancelled by the user",
    )
    with pytest.raises(ValueError):
        Run.objects.finish(queued.pk, Run.Status.RUNNING, "not terminal")


def test_status_is_written_only_in_models_py():
    writers = [
        f"{path.relative_to(SYSOPS_DIR)}:{text[: match.start()].count(chr(10)) + 1}"
        for path in SYSOPS_DIR.rglob("*.py")
        if path.name != "models.py" and "migrations" not in path.parts
        for text in [path.read_text()]
        for match in STATUS_WRITE.finditer(text)
    ]
    assert writers == []
