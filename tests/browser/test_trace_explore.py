"""In headless Chromium, a stored 20k-event trace: searching finds the run's first call, far
behind the lines kept in the page; a summary row shows that syscall's calls a page at a time;
a download arrives gzip-encoded and decodes to the same content as the plain one."""

import urllib.request
from pathlib import Path

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run
from tests.helpers.stored_trace import store_trace

EVENTS = 20_000
KEYS = "() => [...document.querySelectorAll('#trace-lines .tl[data-key]')].map(e => e.dataset.key)"


class StoredTraceTestCase(ChannelsLiveServerTestCase):
    """One test per class: the live server of a second test in a class did not see the rows
    that test wrote (a 404 for its run)."""

    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def stored_run(self):
        run = Run.objects.create(
            experiment="workload", params={}, status=Run.Status.RUNNING, trace_mode="full"
        )
        store_trace(run, EVENTS)
        run.refresh_from_db()
        Run.objects.filter(pk=run.pk).update(
            status=Run.Status.SUCCEEDED, trace={**run.trace, "status": "done"}
        )
        return run


class TraceSearchPageTest(StoredTraceTestCase):
    def test_it_searches_every_stored_event_and_pages_a_summary_row(self):
        run = self.stored_run()
        page = self.browser.new_page()
        page.set_default_timeout(120_000)  # a shared two-core machine can be slow, not wrong
        page.goto(f"{self.live_server_url}/runs/{run.pk}/")
        page.wait_for_selector("#trace-lines .tl")

        page.fill("#trace-text", '"/first-call"')
        first = page.locator("#trace-lines .tl", has_text="/first-call")
        first.wait_for()
        assert page.evaluate(KEYS) == ["i0"]
        first.click()
        assert "ENOENT" in page.locator("#trace-detail").inner_text()
        page.fill("#trace-text", "")

        # The summary's write row: 380 calls, a page of 200 and the rest.
        page.locator("#trace-summary tbody tr", has_text="write").click()
        page.wait_for_function("() => document.querySelectorAll('#trace-lines .tl').length == 200")
        assert page.locator("#trace-syscall").inner_text().startswith("calls of write")
        page.click("#trace-more")
        page.wait_for_function("() => document.querySelectorAll('#trace-lines .tl').length == 380")
        keys = page.evaluate(KEYS)
        assert keys == [f"i{i}" for i in range(50, EVENTS, 50) if i % 1000]
        texts = page.locator("#trace-lines .tl .c").all_inner_texts()
        assert all(t.startswith("write(") for t in texts)
        page.wait_for_function(
            "() => document.getElementById('trace-count').textContent.includes('end of the')"
        )
        page.close()


class TraceDownloadPageTest(StoredTraceTestCase):
    def test_a_download_is_gzip_encoded_and_decodes_to_the_same_content(self):
        run = self.stored_run()
        url = f"{self.live_server_url}/runs/{run.pk}/trace/strace/"
        with urllib.request.urlopen(url) as response:  # no Accept-Encoding: plain
            assert response.headers.get("Content-Encoding") is None
            plain = response.read()
        assert len(plain.splitlines()) == EVENTS

        page = self.browser.new_page()
        page.set_default_timeout(120_000)  # a shared two-core machine can be slow, not wrong
        page.goto(f"{self.live_server_url}/runs/{run.pk}/")
        assert "(about " in page.locator(".downloads").inner_text()
        encoding, text = page.evaluate(
            "async (url) => { const r = await fetch(url);"
            " return [r.headers.get('content-encoding'), await r.text()]; }",
            url,
        )
        assert encoding == "gzip"
        assert text.encode() == plain
        with page.expect_download() as download:
            page.click("a[href$='/trace/strace/']")
        assert Path(download.value.path()).read_bytes() == plain
        page.close()
