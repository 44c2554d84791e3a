"""Sign-in throttling (django-axes): repeated bad passwords lock out for a while, then not."""

from __future__ import annotations

import http.cookiejar
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from tests.helpers.server import daphne_server

# Long enough that the attempts (each hashes a password: up to a second on a busy machine) all
# fall inside it.
COOLOFF_S = 60
SERVER_COOLOFF_S = 8


@pytest.fixture
def ada(settings, db):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=COOLOFF_S)
    return User.objects.create_user("ada", password="correct horse battery")


def _sign_in(client: Client, password: str, name: str = "ada"):
    return client.post("/login/", {"username": name, "password": password})


def test_it_locks_a_user_out_after_bad_passwords_then_lets_them_in(ada):
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(2):
        assert _sign_in(client, "wrong").status_code == 200  # the form again, with its error
    assert _sign_in(client, "wrong").status_code == 429  # the limit: locked out
    locked = _sign_in(client, "correct horse battery")
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    # The name is locked from another address too.
    assert _sign_in(Client(REMOTE_ADDR="10.0.0.2"), "correct horse battery").status_code == 429
    # The cool-off passes.
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=COOLOFF_S + 1))
    assert _sign_in(client, "correct horse battery").status_code == 302


def test_one_address_trying_many_names_is_locked_out(ada):
    client = Client(REMOTE_ADDR="10.0.0.3")
    for n in range(3):
        _sign_in(client, "wrong", name=f"guess{n}")
    assert _sign_in(client, "correct horse battery").status_code == 429
    # Another address may still sign in as ada.
    assert _sign_in(Client(REMOTE_ADDR="10.0.0.4"), "correct horse battery").status_code == 302


def test_the_throttle_holds_in_the_real_server():
    """Through daphne's ASGI path (axes's async middleware), lock-out and cool-off."""
    env = {"SYSOPS_LOGIN_FAILURE_LIMIT": "2", "SYSOPS_LOGIN_COOLOFF_S": str(SERVER_COOLOFF_S)}
    with daphne_server(env) as server:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

        def attempt() -> int:
            page = opener.open(server.url + "/login/").read().decode()
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
            data = urllib.parse.urlencode(
                {"username": "nobody", "password": "wrong", "csrfmiddlewaretoken": token}
            ).encode()
            request = urllib.request.Request(
                server.url + "/login/", data=data, headers={"Referer": server.url + "/login/"}
            )
            try:
                return opener.open(request).status
            except urllib.error.HTTPError as refused:
                return refused.code

        assert [attempt(), attempt(), attempt()] == [200, 429, 429]
        time.sleep(SERVER_COOLOFF_S + 0.5)
        assert attempt() == 200
