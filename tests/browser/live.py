"""The base of browser tests: a live Channels server with static files and the session's
Chromium (from conftest's ``browser`` fixture) as ``self.browser``."""

import pytest
from channels.testing import ChannelsLiveServerTestCase


class BrowserLiveServerTestCase(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def submit(self, slug, *, uncheck=(), fill=None, select=None, viewport=None):
        """Open ``slug``'s form (in a page of ``viewport`` size, if given), untick the
        ``(field, value)`` boxes in ``uncheck``, type each ``{field: text}`` of ``fill``, choose
        each ``{field: value}`` of ``select``, submit, and return the page once it shows the
        run."""
        page = self.browser.new_page(viewport=viewport)
        page.goto(f"{self.live_server_url}/experiments/{slug}/")
        for name, value in uncheck:
            page.uncheck(f"input[name={name}][value={value}]")
        for name, text in (fill or {}).items():
            page.fill(f"input[name={name}]", text)
        for name, value in (select or {}).items():
            page.select_option(f"select[name={name}]", value)
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        return page

    def submit_traced_epoll_echo(self, viewport=None):
        """A one-second epoll-echo run with a sampled trace: two processes (client and
        server), a chart, results and a trace."""
        return self.submit(
            "epoll-echo",
            fill={"clients": "4", "duration_s": "1"},
            select={"trace": "sampled"},
            viewport=viewport,
        )
