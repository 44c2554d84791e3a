"""Trace downloads of a stored trace: gzip on the fly when the client accepts it, the same
content either way, and the size the page announces before the click."""

import gzip

import pytest
from asgiref.sync import async_to_sync
from django.test import RequestFactory

from sysops.downloads import accepts_gzip
from sysops.models import Run
from tests.helpers.stored_trace import store_trace

pytestmark = pytest.mark.django_db
EVENTS = 30_000  # past DownloadSizes.EXACT_EVENTS: the sizes are estimated from a sample


@pytest.fixture
def stored_run():
    run = Run.objects.create(
        experiment="workload", params={}, status=Run.Status.RUNNING, trace_mode="full"
    )
    store_trace(run, EVENTS)
    run.refresh_from_db()
    return run


def body(response):
    async def collect():
        return b"".join([chunk async for chunk in response.streaming_content])

    return async_to_sync(collect)()


@pytest.mark.parametrize("fmt", ["strace", "ndjson", "perfetto", "summary"])
def test_a_gzip_download_decodes_to_the_plain_one(client, stored_run, fmt):
    url = f"/runs/{stored_run.pk}/trace/{fmt}/"
    plain = client.get(url)
    packed = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate, br")
    assert "Content-Encoding" not in plain
    assert packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in plain["Vary"] and "Accept-Encoding" in packed["Vary"]
    plain_bytes, packed_bytes = body(plain), body(packed)
    assert packed_bytes[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed_bytes) == plain_bytes
    if fmt != "summary":
        assert len(packed_bytes) * 5 < len(plain_bytes)  # trace text compresses well


def test_the_announced_sizes_are_close_to_the_downloads(client, stored_run):
    sizes = stored_run.trace["download_bytes"]
    for fmt in ("strace", "ndjson", "perfetto"):
        actual = len(body(client.get(f"/runs/{stored_run.pk}/trace/{fmt}/")))
        assert abs(sizes[fmt] - actual) < actual * 0.05, (fmt, sizes[fmt], actual)
    assert len(body(client.get(f"/runs/{stored_run.pk}/trace/strace/")).splitlines()) == EVENTS
    page = client.get(f"/runs/{stored_run.pk}/").content.decode()
    assert "(about " in page


def test_it_reads_accept_encoding_as_http_says():
    def accepts(value):
        return accepts_gzip(RequestFactory().get("/", HTTP_ACCEPT_ENCODING=value))

    assert accepts("gzip")
    assert accepts("deflate, GZIP;q=0.5")
    assert accepts("*")
    assert not accepts("")
    assert not accepts("br, deflate")
    assert not accepts("gzip;q=0")
    assert not accepts("gzip;q=0.0, br")
    assert not accepts("gzip;q=nonsense")
