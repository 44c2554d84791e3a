"""Fair use: how many runs one person, and everyone, may have waiting; one run per submission."""

import pytest
from django.contrib.auth.models import User
from django.test import Client

from sysops.models import Run

pytestmark = pytest.mark.django_db

ECHO = {"clients": "2", "message_bytes": "64", "duration_s": "1"}
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml"}


def _signed_in(name: str) -> Client:
    User.objects.create_user(name, password="correct horse battery")
    client = Client()
    assert client.login(username=name, password="correct horse battery")
    return client


def test_it_refuses_a_users_run_over_the_quota_and_creates_nothing(settings):
    settings.SYSOPS_QUEUED_PER_USER = 3
    ada, bob = _signed_in("ada"), _signed_in("bob")
    for _ in range(3):
        assert ada.post("/experiments/epoll-echo/", ECHO, **HTML).status_code == 302
    refused = ada.post("/experiments/epoll-echo/", ECHO, **HTML)
    assert refused.status_code == 429
    assert refused["Retry-After"]
    body = refused.content.decode()
    assert 'id="refusal"' in body and "3 runs waiting" in body
    # Next to the Run button, with the person's input kept.
    assert body.index("Run</button>") < body.index('id="refusal"')
    assert Run.objects.filter(user__username="ada").count() == 3
    # Another user's share is their own.
    assert bob.post("/experiments/epoll-echo/", ECHO, **HTML).status_code == 302
    # A run that started frees a place.
    Run.objects.filter(pk=Run.objects.filter(user__username="ada").first().pk).update(
        status=Run.Status.RUNNING
    )
    assert ada.post("/experiments/epoll-echo/", ECHO, **HTML).status_code == 302


def test_scripts_get_429_json(settings):
    settings.SYSOPS_QUEUED_PER_USER = 1
    client = Client()
    assert client.post("/experiments/epoll-echo/", ECHO).status_code == 302
    refused = client.post("/experiments/epoll-echo/", ECHO, HTTP_ACCEPT="*/*")
    assert refused.status_code == 429
    assert "1 runs waiting" in refused.json()["error"]
    assert Run.objects.count() == 1


def test_without_users_the_quota_is_per_client_address(settings):
    settings.SYSOPS_QUEUED_PER_USER = 2
    here = Client(REMOTE_ADDR="127.0.0.1")
    there = Client(REMOTE_ADDR="127.0.0.2")
    for _ in range(2):
        assert here.post("/experiments/epoll-echo/", ECHO).status_code == 302
    assert here.post("/experiments/epoll-echo/", ECHO).status_code == 429
    assert there.post("/experiments/epoll-echo/", ECHO).status_code == 302
    assert sorted(Run.objects.values_list("client_addr", flat=True)) == [
        "127.0.0.1",
        "127.0.0.1",
        "127.0.0.2",
    ]


def test_the_whole_queue_is_capped(settings):
    settings.SYSOPS_QUEUE_MAX = 2
    for n in range(2):
        assert _signed_in(f"u{n}").post("/experiments/epoll-echo/", ECHO).status_code == 302
    refused = _signed_in("late").post("/experiments/epoll-echo/", ECHO, **HTML)
    assert refused.status_code == 429 and "The queue is full" in refused.content.decode()
    assert Run.objects.count() == 2


def test_run_again_is_refused_over_the_quota_too(settings):
    settings.SYSOPS_QUEUED_PER_USER = 1
    client = Client()
    client.post("/experiments/epoll-echo/", ECHO)
    first = Run.objects.get()
    assert client.post(f"/runs/{first.pk}/again/", **HTML).status_code == 429
    assert Run.objects.count() == 1


def test_a_double_post_of_one_form_queues_one_run():
    client = Client()
    page = client.get("/experiments/epoll-echo/").content.decode()
    token = page.split('name="submission" value="')[1].split('"')[0]
    first = client.post("/experiments/epoll-echo/", {**ECHO, "submission": token})
    second = client.post("/experiments/epoll-echo/", {**ECHO, "submission": token})
    run = Run.objects.get()
    assert first["Location"] == second["Location"] == f"/runs/{run.pk}/"
    # A new page load is a new submission.
    page = client.get("/experiments/epoll-echo/").content.decode()
    other = page.split('name="submission" value="')[1].split('"')[0]
    assert other != token
    client.post("/experiments/epoll-echo/", {**ECHO, "submission": other})
    assert Run.objects.count() == 2


def test_run_again_double_click_queues_one_run():
    client = Client()
    old = Run.objects.create(
        experiment="epoll-echo",
        params={"clients": 3, "message_bytes": 10, "duration_s": 1.0, "trigger_mode": "edge"},
        status=Run.Status.SUCCEEDED,
    )
    page = client.get(f"/runs/{old.pk}/").content.decode()
    token = page.split('name="submission" value="')[1].split('"')[0]
    a = client.post(f"/runs/{old.pk}/again/", {"submission": token})
    b = client.post(f"/runs/{old.pk}/again/", {"submission": token})
    assert a["Location"] == b["Location"]
    assert Run.objects.exclude(pk=old.pk).count() == 1


@pytest.mark.django_db(transaction=True)
def test_simultaneous_submits_cannot_both_take_the_last_place(settings):
    import threading

    from django.db import connection

    from sysops import services

    settings.SYSOPS_QUEUED_PER_USER = 3
    submitters = 8
    start = threading.Barrier(submitters)
    outcomes: list[str] = []

    def submit() -> None:
        start.wait()
        try:
            services.run_create(
                experiment="epoll-echo", params={}, user=None, client_addr="10.1.1.1"
            )
            outcomes.append("queued")
        except services.QuotaExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["queued"] * 3 + ["refused"] * 5
    assert Run.objects.count() == 3
