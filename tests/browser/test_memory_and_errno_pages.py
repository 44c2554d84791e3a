"""In headless Chromium: the mmap form with a size sweep draws its curve and table; the
errno-boundary panel stays readable on a phone-sized screen."""

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run


class MmapSweepTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def test_it_draws_the_size_sweep_and_the_table(self):
        page = self.browser.new_page()
        page.goto(f"{self.live_server_url}/experiments/mmap/")
        page.fill("input[name=size_kib]", "1024")
        page.uncheck("input[name=layers][value=python]")
        page.check("input[name=sweep]")
        page.fill("input[name=repetitions]", "2")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")

        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=120_000)
        page.wait_for_selector("#run-results table.results")
        assert page.locator("#chart-sweep canvas").count() >= 1
        assert page.locator("#chart-faults canvas").count() >= 1
        metrics = page.locator("#run-results tbody th").all_inner_texts()
        assert any(
            m.startswith("first-touch time per MiB (fitted over the sweep)") for m in metrics
        )
        assert any(m.startswith("faults per page, C MAP_PRIVATE MAP_POPULATE") for m in metrics)
        assert Run.objects.get().params["sweep"] is True
        page.close()


class ErrnoPanelTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def test_the_refusals_panel_fits_a_phone_and_names_each_errno(self):
        page = self.browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{self.live_server_url}/experiments/errno-boundary/")
        page.fill("input[name=iterations]", "20")
        page.fill("input[name=repetitions]", "2")
        page.fill("input[name=interrupt_ms]", "2")
        page.fill("input[name=interruptions]", "1")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")

        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=120_000)
        page.wait_for_selector("table.errno-boundary")
        panel = page.locator("table.errno-boundary").inner_text()
        for name in ("EFAULT", "EBADF", "EINVAL", "EACCES", "EPERM", "EAGAIN", "EINTR"):
            assert name in panel
        assert "BlockingIOError" in panel and "PermissionError" in panel
        # The wide table scrolls sideways in its own box, which stays within the screen.
        box = page.locator(".panel-scroll").bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 1
        assert page.locator(".panel-scroll").evaluate("e => e.scrollWidth > e.clientWidth")
        page.close()
