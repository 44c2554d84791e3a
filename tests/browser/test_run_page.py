"""A person in headless Chromium submits the syscall-cost form and watches the run live."""

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run


class RunPageTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def test_it_shows_progress_points_and_results_without_a_reload(self):
        page = self.browser.new_page()
        page.goto(f"{self.live_server_url}/experiments/syscall-cost/")
        page.select_option("select[name=call]", "getppid")
        for layer in ("python", "ctypes", "native"):
            page.check(f"input[name=layers][value={layer}]")
        page.fill("input[name=iterations]", "200000")
        page.fill("input[name=repetitions]", "60")
        page.fill("input[name=warmup]", "1")
        page.click("button[type=submit]")

        page.wait_for_url("**/runs/*/")
        # A marker on window survives only if the page is never reloaded.
        page.evaluate("window.__noReload = true")

        # The progress bar advances while the run is still running.
        page.wait_for_function(
            "() => { const p = document.querySelector('#run-progress progress');"
            " return p && p.value > 0 && p.value < 1; }",
            timeout=60_000,
        )
        # Chart points appear as repetitions arrive.
        page.wait_for_function(
            "() => Number(document.getElementById('run-live').dataset.points || 0) > 0",
            timeout=60_000,
        )
        assert page.locator("#chart-cost canvas").count() >= 1

        # The results table arrives when the run ends.
        page.wait_for_selector("#run-results table.results", timeout=120_000)
        assert page.locator("#run-status").get_attribute("data-status") == "succeeded"
        metrics = page.locator("#run-results tbody th").all_inner_texts()
        assert any("Python" in m or "python" in m for m in metrics)
        assert any("native" in m for m in metrics)
        assert page.evaluate("window.__noReload") is True
        assert page.locator("#run-actions .cancel").is_hidden()

        run = Run.objects.get()
        assert run.status == Run.Status.SUCCEEDED
        assert page.url.endswith(f"/runs/{run.pk}/")
        page.close()
