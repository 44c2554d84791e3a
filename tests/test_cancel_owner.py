"""Only a run's owner, or staff, may cancel it; the run records who did."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from sysops.models import Run

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people(settings):
    settings.SYSOPS_REQUIRE_LOGIN = True
    return (
        User.objects.create_user("ada", password="x" * 12),
        User.objects.create_user("bob", password="x" * 12),
        User.objects.create_user("root", password="x" * 12, is_staff=True),
    )


def _queued_and_running(owner: User) -> tuple[Run, Run]:
    return (
        Run.objects.create(experiment="epoll-echo", params={}, user=owner),
        Run.objects.create(
            experiment="epoll-echo", params={}, user=owner, status=Run.Status.RUNNING
        ),
    )


def test_it_refuses_another_users_cancel_and_changes_nothing(people):
    ada, bob, _ = people
    queued, running = _queued_and_running(ada)
    for run in (queued, running):
        response = _client(bob).post(f"/runs/{run.pk}/cancel/")
        assert response.status_code == 403
        assert b"may cancel" in response.content
        run.refresh_from_db()
        assert not run.cancel_requested and run.cancelled_by is None
    assert queued.status == Run.Status.QUEUED and running.status == Run.Status.RUNNING


def test_the_owner_cancels_and_is_recorded(people):
    ada, _, _ = people
    queued, running = _queued_and_running(ada)
    for run in (queued, running):
        assert _client(ada).post(f"/runs/{run.pk}/cancel/").status_code == 302
        run.refresh_from_db()
        assert run.cancelled_by == ada
    assert queued.status == Run.Status.CANCELLED
    assert running.cancel_requested


def test_staff_may_cancel_anyones_run(people):
    ada, _, root = people
    run = Run.objects.create(experiment="epoll-echo", params={}, user=ada)
    assert _client(root).post(f"/runs/{run.pk}/cancel/").status_code == 302
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED and run.cancelled_by == root


def test_the_cancel_button_is_shown_to_the_owner_only(people):
    ada, bob, _ = people
    _, running = _queued_and_running(ada)
    assert b"Cancel</button>" in _client(ada).get(f"/runs/{running.pk}/").content
    assert b"Cancel</button>" not in _client(bob).get(f"/runs/{running.pk}/").content
