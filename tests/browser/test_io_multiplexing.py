"""A person runs io-multiplexing from its form and reads the chart, the cliff and the ET panel."""

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run


class IoMultiplexingPageTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def test_it_draws_the_sweep_marks_the_cliff_and_shows_the_missed_edge(self):
        page = self.browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{self.live_server_url}/experiments/io-multiplexing/")
        page.fill("input[name=counts]", "10, 100, 1100")
        page.fill("input[name=active]", "0")
        page.fill("input[name=calls]", "50")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")

        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=120_000)
        page.wait_for_selector("#run-results table.results")
        assert page.locator("#chart-cost canvas").count() >= 1
        metrics = page.locator("#run-results tbody th").all_inner_texts()
        assert "select: the FD_SETSIZE cliff" in metrics
        assert not any(m.startswith("select (C), 1,100") for m in metrics)
        assert any(m.startswith("epoll (edge-triggered) (C), 1,100") for m in metrics)
        panel = page.locator(".panel .iomux-trigger")
        assert "← missed" in panel.inner_text()
        # Readable on a phone: the panel fits the 390 px viewport without sideways scrolling.
        assert panel.bounding_box()["width"] <= 390

        run = Run.objects.get()
        assert run.params["counts"] == [10, 100, 1100]
        page.close()
