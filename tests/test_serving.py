"""How the site answers at its edges: status codes, security headers, deployment checks,
repeated choices."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.test import Client

from playground.asgi import application
from sysops.experiments import registry
from sysops.models import Run
from tests.test_consumers import ORIGIN

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def no_embedded_agent(settings):
    settings.SYSOPS_EMBEDDED_AGENT = False


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "path",
    [
        "/static/..%2f..%2fplayground%2fsettings.py",
        "/static/sysops/..%2f..%2f..%2fetc%2fpasswd",
        "/static/no-such-file.css",
    ],
)
async def test_a_static_path_outside_the_static_files_is_404(path):
    response = await HttpCommunicator(application, "GET", path).get_response(timeout=10)
    assert response["status"] == 404


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_websocket_to_an_unknown_path_is_closed_with_404(caplog):
    ws = WebsocketCommunicator(application, "/ws/no-such-thing/", headers=[ORIGIN])
    connected, _ = await ws.connect()
    assert connected
    assert (await ws.receive_output())["code"] == 4404
    assert "Traceback" not in caplog.text and "No route found" not in caplog.text


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/runs/", "/experiments/epoll-echo/", "/login/"])
def test_head_on_pages_is_200(client, path):
    assert client.head(path).status_code == 200


@pytest.mark.django_db
def test_head_on_a_run_page_is_200(client):
    run = Run.objects.create(experiment="epoll-echo", params={})
    assert client.head(f"/runs/{run.pk}/").status_code == 200


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_with_our_own_scripts_only(client):
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "style-src 'self';" in policy
    assert "script-src 'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    body = response.content.decode()
    assert "<script>" not in body and "<style" not in body


@pytest.mark.django_db
def test_an_unknown_host_gets_a_page_naming_the_setting():
    response = Client().get("/", HTTP_HOST="playground.example.org")
    assert response.status_code == 400
    body = response.content.decode()
    assert "playground.example.org" in body and "ALLOWED_HOSTS" in body


def _deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO_ROOT,
        # (Without the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE, which their conftest sets in
        # any pytest process that collects them: it is not part of a deployment.)
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"},
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "0",
            **env,
        },
        capture_output=True,
        text=True,
    )


def test_the_deployment_check_is_clean_behind_https():
    result = _deploy_check({"SYSOPS_HTTPS": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    # And it has something to say without it: the setting is what makes the difference.
    assert _deploy_check({"SYSOPS_HTTPS": "0"}).returncode != 0


@pytest.mark.django_db
def test_behind_https_cookies_are_secure_and_hsts_is_sent(settings, client):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    settings.CSRF_COOKIE_SECURE = True
    response = client.get("/experiments/epoll-echo/", HTTP_X_FORWARDED_PROTO="https")
    assert response["Strict-Transport-Security"].startswith("max-age=3600")
    assert response.cookies["csrftoken"]["secure"]


@pytest.mark.django_db
def test_a_choice_given_three_times_counts_once(client):
    exp = registry.get("errno-boundary")
    form = exp.form_class()
    data = {name: form[name].value() for name in form.fields}
    data = {k: v for k, v in data.items() if v is not None}
    data["layers"] = ["libc", "libc", "libc"]
    response = client.post("/experiments/errno-boundary/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Run.objects.get().params["layers"] == ["libc"]
