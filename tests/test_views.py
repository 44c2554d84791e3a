"""Pages, who may start and cancel runs, and CSRF."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from sysops.models import Run

pytestmark = pytest.mark.django_db

ECHO = {"clients": "2", "message_bytes": "64", "duration_s": "1"}


def test_the_dashboard_shows_the_host_the_sandbox_and_the_catalog(client):
    body = client.get("/").content.decode()
    assert "This host" in body and "Kernel" in body and "Clocksource" in body
    assert "CPU mitigations" in body
    assert "Runs are sandboxed." in body
    assert "Syscall cost: the layer ladder" in body
    assert "epoll echo server under load" in body
    assert "Hostile" not in body  # test-only experiments stay out of the catalog
    assert 'ws-connect="/ws/runs/"' in body


def test_the_run_page_and_history_show_a_run(client):
    run = Run.objects.create(experiment="epoll-echo", params={"clients": 2})
    body = client.get(f"/runs/{run.pk}/").content.decode()
    assert f'ws-connect="/ws/runs/{run.pk}/"' in body
    assert 'data-status="queued"' in body
    assert "Cancel" in body and "Run again" in body
    history = client.get("/runs/").content.decode()
    assert f'id="run-row-{run.pk}"' in history and "clients=2" in history


def test_run_again_queues_the_same_parameters(client):
    first = Run.objects.create(
        experiment="epoll-echo",
        params={"clients": 3, "message_bytes": 10, "duration_s": 1.0, "trigger_mode": "edge"},
    )
    response = client.post(f"/runs/{first.pk}/again/")
    again = Run.objects.exclude(pk=first.pk).get()
    assert response["Location"] == f"/runs/{again.pk}/"
    assert again.params == first.params
    assert again.status == Run.Status.QUEUED


def test_off_loopback_starting_and_cancelling_need_a_sign_in(client, settings):
    settings.SYSOPS_REQUIRE_LOGIN = True
    response = client.post("/experiments/epoll-echo/", ECHO)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not Run.objects.exists()
    run = Run.objects.create(experiment="epoll-echo", params={"clients": 2})
    client.post(f"/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == Run.Status.QUEUED

    User.objects.create_user("ada", password="correct horse battery")
    assert client.login(username="ada", password="correct horse battery")
    response = client.post("/experiments/epoll-echo/", ECHO)
    assert response.status_code == 302
    assert Run.objects.filter(user__username="ada").count() == 1
    client.post(f"/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == Run.Status.CANCELLED


def test_forms_are_csrf_protected():
    client = Client(enforce_csrf_checks=True)
    assert client.post("/experiments/epoll-echo/", ECHO).status_code == 403
    page = client.get("/experiments/epoll-echo/")
    token = page.cookies["csrftoken"].value
    response = client.post("/experiments/epoll-echo/", {**ECHO, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Run.objects.count() == 1


def test_listening_off_loopback_turns_sign_in_on(monkeypatch):
    import importlib

    import playground.settings as playground_settings

    monkeypatch.setenv("LISTEN_HOST", "0.0.0.0")
    monkeypatch.delenv("SYSOPS_REQUIRE_LOGIN", raising=False)
    assert importlib.reload(playground_settings).SYSOPS_REQUIRE_LOGIN is True
    monkeypatch.setenv("LISTEN_HOST", "127.0.0.1")
    assert importlib.reload(playground_settings).SYSOPS_REQUIRE_LOGIN is False


def test_run_again_of_an_echo_run_from_before_the_trigger_mode_is_level_triggered(client):
    old = Run.objects.create(
        experiment="epoll-echo", params={"clients": 3, "message_bytes": 10, "duration_s": 1.0}
    )
    client.post(f"/runs/{old.pk}/again/")
    again = Run.objects.exclude(pk=old.pk).get()
    assert again.params == {**old.params, "trigger_mode": "level"}


def test_the_multiplexing_page_offers_its_form_and_draws_the_trigger_panel(client):
    body = client.get("/experiments/io-multiplexing/").content.decode()
    assert 'name="counts"' in body and 'value="epoll_et"' in body
    steps = [
        {"step": "read 100 of them; epoll_wait again", "unit": "events", "level": 1, "edge": 0},
        {"step": "<b>bytes</b> still queued", "unit": "bytes", "level": 100, "edge": 100},
    ]
    run = Run.objects.create(
        experiment="io-multiplexing",
        params={"counts": [10]},
        status=Run.Status.SUCCEEDED,
        results=[
            {
                "metric": "edge-triggered: epoll_wait after a partial read",
                "value": 0,
                "unit": "events",
                "note": "",
                "detail": {"panel": "iomux_trigger", "steps": steps},
            }
        ],
    )
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "read 100 of them; epoll_wait again" in page
    assert "0 events <strong>← missed</strong>" in page
    assert "&lt;b&gt;bytes&lt;/b&gt; still queued" in page  # escaped, never raw


def test_a_form_posted_by_its_script_is_answered_with_the_run_page_and_no_redirect(client):
    response = client.post(
        "/experiments/epoll-echo/",
        {**ECHO, "submission": "a" * 32},
        headers={"X-Sysops-Submit": "live", "Accept": "text/html"},
    )
    run = Run.objects.get()
    assert response.status_code == 201
    assert response["Location"] == f"/runs/{run.pk}/"
    assert response["X-Sysops-Run"] == str(run.pk)
    assert response["X-Sysops-Shown"] == "0 queued"  # what the page shows: no batch, queued
    body = response.content.decode()
    assert f'ws-connect="/ws/runs/{run.pk}/"' in body and 'data-status="queued"' in body

    # The same submission again (a double click) leads to the same run.
    again = client.post(
        "/experiments/epoll-echo/",
        {**ECHO, "submission": "a" * 32},
        headers={"X-Sysops-Submit": "live", "Accept": "text/html"},
    )
    assert again["X-Sysops-Run"] == str(run.pk) and Run.objects.count() == 1


def test_a_form_posted_by_its_script_with_errors_gets_the_form_and_no_run(client):
    response = client.post(
        "/experiments/epoll-echo/",
        {**ECHO, "clients": "0"},
        headers={"X-Sysops-Submit": "live", "Accept": "text/html"},
    )
    assert response.status_code == 400
    assert "X-Sysops-Run" not in response
    assert 'id="error-clients"' in response.content.decode()
    assert not Run.objects.exists()


def test_the_experiment_form_posts_itself_and_opens_its_watch_socket(client):
    body = client.get("/experiments/epoll-echo/").content.decode()
    assert "data-live-submit" in body and "sysops/submit.js" in body
    assert 'hx-trigger="load, change delay:250ms from:#experiment-form"' in body
