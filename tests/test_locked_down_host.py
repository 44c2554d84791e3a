"""On a host that forbids namespaces, runs are refused with the reason, never run unsandboxed
unless the development switch says so — and then every result says UNSANDBOXED."""

import sys

import pytest

from sysops.models import Run
from tests.helpers.locked_down import run_locked_down
from tests.helpers.runs import database_url

pytestmark = pytest.mark.django_db(transaction=True)


def locked_down(*argv, **env):
    return run_locked_down("namespaces", list(argv), database_url=database_url(), **env)


HEADLESS = [
    sys.executable,
    "manage.py",
    "run_experiment",
    "syscall-cost",
    "--param",
    "iterations=1000",
    "--param",
    "repetitions=5",
]


def test_a_run_is_refused_with_the_reason():
    done = locked_down(*HEADLESS)
    assert done.returncode == 1, done.stderr
    run = Run.objects.get()
    assert run.status == Run.Status.FAILED
    assert run.reason.startswith("sandbox refused: cannot sandbox:")
    assert "namespaces" in run.reason
    assert not run.results
    assert "sandbox refused" in done.stderr


def test_the_dashboard_and_run_page_say_why():
    done = locked_down(*HEADLESS)
    assert done.returncode == 1
    run = Run.objects.get()
    page = locked_down(
        sys.executable,
        "-c",
        "import django; django.setup()\n"
        "from django.test import Client\n"
        "c = Client(HTTP_HOST='127.0.0.1')\n"
        f"print(c.get('/').content.decode()); print(c.get('/runs/{run.pk}/').content.decode())",
        DJANGO_SETTINGS_MODULE="playground.settings",
    )
    assert page.returncode == 0, page.stderr
    assert "Runs are refused: cannot sandbox:" in page.stdout
    assert "sandbox refused: cannot sandbox:" in page.stdout


def test_the_development_switch_runs_it_marked_unsandboxed():
    done = locked_down(*HEADLESS, SYSOPS_ALLOW_UNSANDBOXED="1")
    assert done.returncode == 0, done.stderr
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED
    assert run.unsandboxed
    assert "UNSANDBOXED" in done.stdout
    assert run.logs.filter(message__startswith="UNSANDBOXED").exists()
