"""Small things every page gets right: the status badge says a success once, the favicon
exists where every page links it, errors are pages of the site."""

import pytest
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string

from sysops.models import Run

pytestmark = pytest.mark.django_db


def test_a_success_is_one_word_not_succeeded_completed():
    run = Run(experiment="syscall-cost", params={}, status="succeeded", reason="completed")
    badge = render_to_string("sysops/_run_status.html", {"run": run})
    assert "succeeded" in badge and "completed" not in badge
    failed = Run(experiment="syscall-cost", params={}, status="failed", reason="worker exited 3")
    assert "worker exited 3" in render_to_string("sysops/_run_status.html", {"run": failed})


def test_every_page_links_a_favicon_that_exists(client):
    page = client.get("/").content.decode()
    assert 'rel="icon" href="/static/sysops/favicon.svg"' in page
    assert finders.find("sysops/favicon.svg")


def test_an_unknown_address_is_a_page_of_the_site(client):
    response = client.get("/runs/999999/")
    assert response.status_code == 404
    assert "Back to the dashboard" in response.content.decode()
