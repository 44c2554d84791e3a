"""The whole scaled mode: the web app under daphne on PostgreSQL with the Redis channel layer, a
run submitted through its form, claimed by a standalone agent, streamed live over Redis to a
websocket viewer, and recorded in PostgreSQL."""

from __future__ import annotations

import http.cookiejar
import re
import socket
import urllib.parse
import urllib.request

from sysops.models import Run, SampleChunk

SAMPLES = 50_000


def submit(base_url: str, slug: str, fields: dict[str, object]) -> int:
    """Post the experiment's form as a browser would (its CSRF token and cookie); the run id
    from the page it redirects to."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    url = f"{base_url}/experiments/{slug}/"
    page = opener.open(url, timeout=30).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, page[:2000]
    body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token.group(1)}).encode()
    with opener.open(url, body, timeout=30) as response:
        landed = re.search(r"/runs/(\d+)/$", response.geturl())
        assert landed, response.geturl()
        return int(landed.group(1))


def expected_samples(count: int) -> list[list[object]]:
    return [["synthetic", i, i % 97] for i in range(count)]


def test_a_run_goes_from_the_form_through_an_agent_and_redis_to_a_viewer(scaled_db, scaled_stack):
    _, base_url = scaled_stack.start_web()
    run_id = submit(base_url, "synthetic", {"samples": SAMPLES, "trace": "off"})
    run = Run.objects.using(scaled_db).get(pk=run_id)
    assert run.status == Run.Status.QUEUED  # no agent inside the web server in this mode

    viewer = scaled_stack.start_viewer(run_id)
    viewer.wait_ready()
    agent = scaled_stack.start_agent()
    seen = viewer.seen()

    assert (seen["status"], seen["error"]) == ("succeeded", "")
    assert seen["live_frames"] >= 1 and seen["live_samples"] > 0, seen["live_seqs"]
    assert seen["samples"] == expected_samples(SAMPLES)
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.claimed_by == f"{socket.gethostname()}:{agent.pid}"
    stored = SampleChunk.objects.using(scaled_db).filter(run=run).order_by("seq")
    assert [s for chunk in stored for s in chunk.samples] == expected_samples(SAMPLES)
