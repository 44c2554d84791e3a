"""The base of browser tests: a live Channels server with static files and the session's
Chromium (from conftest's ``browser`` fixture) as ``self.browser``."""

import pytest
from channels.testing import ChannelsLiveServerTestCase


class BrowserLiveServerTestCase(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def submit(self, slug, *, uncheck=(), fill=None):
        """Open ``slug``'s form, untick the ``(field, value)`` boxes in ``uncheck``, type each
        ``{field: text}`` of ``fill``, submit, and return the page once it shows the run."""
        page = self.browser.new_page()
        page.goto(f"{self.live_server_url}/experiments/{slug}/")
        for name, value in uncheck:
            page.uncheck(f"input[name={name}][value={value}]")
        for name, text in (fill or {}).items():
            page.fill(f"input[name={name}]", text)
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        return page
