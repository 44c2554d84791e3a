"""A person in headless Chromium runs socket-options from its form and sees the Nagle chart
and the table of getsockopt values with their levels."""

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run


class SocketOptionsPageTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def test_it_charts_the_nagle_stall_and_shows_the_options_panel(self):
        page = self.browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{self.live_server_url}/experiments/socket-options/")
        page.uncheck("input[name=scenarios][value=nodelay]")
        page.check("input[name=scenarios][value=nodelay]")
        page.check("input[name=scenarios][value=reuseaddr]")
        page.fill("input[name=exchanges]", "10")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")

        page.wait_for_function(
            "() => Number(document.getElementById('run-live').dataset.points || 0) > 0",
            timeout=60_000,
        )
        assert page.locator("#chart-nodelay canvas").count() >= 1
        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=120_000)
        page.wait_for_selector("#run-results table.results", timeout=10_000)
        options = page.locator("table.sockopts").first.inner_text()
        assert "IPPROTO_TCP" in options and "TCP_NODELAY" in options
        decoded = page.locator("table.proc-net-tcp").inner_text()
        assert "TIME_WAIT" in decoded and "0100007F:" in decoded
        assert Run.objects.get().status == Run.Status.SUCCEEDED
        page.close()
