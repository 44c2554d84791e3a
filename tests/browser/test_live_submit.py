"""The experiment form posts in the background: the run page replaces the form without a
navigation, and the socket the form page opened (/ws/watch/) is the run page's own."""

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run
from tests.helpers.runs import wait_for

SHOWS_LIVE_DATA = (
    "() => { const p = document.querySelector('#run-progress progress');"
    " return (p && p.value > 0) || Number(document.getElementById('run-live')"
    ".dataset.points || 0) > 0; }"
)


class LiveSubmitTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def fill_small_run(self, page, iterations="1000"):
        page.fill("input[name=iterations]", iterations)
        page.fill("input[name=repetitions]", "5")
        page.fill("input[name=warmup]", "0")

    def test_the_run_page_replaces_the_form_and_takes_over_its_socket(self):
        page = self.browser.new_page()
        sockets = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.goto(f"{self.live_server_url}/experiments/syscall-cost/")
        page.wait_for_function("() => window.htmx && window.htmx.createWebSocket")
        page.evaluate("window.__samePage = true")
        self.fill_small_run(page)
        page.click("button[type=submit]")

        page.wait_for_url("**/runs/*/")
        page.wait_for_function(SHOWS_LIVE_DATA, timeout=60_000)
        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=60_000)
        run = Run.objects.get()
        assert page.url.endswith(f"/runs/{run.pk}/")
        assert page.evaluate("window.__samePage") is True  # no navigation, no reload
        assert page.title().startswith(f"Run #{run.pk}")
        assert page.locator("#run-results table.results").count() == 1
        assert page.locator("#chart-cost canvas").count() >= 1
        # One socket only: the form page's, which became the run page's.
        assert len(sockets) == 1 and sockets[0].endswith("/ws/watch/")
        # The page reported its first frame over that socket (it sends as well as receives).
        wait_for(run, lambda r: "first_frame" in r.stages, timeout_s=10)

        # Back to the form: it is shown again, as it is now.
        page.go_back()
        page.wait_for_selector("#experiment-form")
        assert page.url.endswith("/experiments/syscall-cost/")

    def test_a_refused_form_shows_its_errors_in_place_and_posts_again_once_fixed(self):
        page = self.browser.new_page()
        page.goto(f"{self.live_server_url}/experiments/syscall-cost/")
        page.evaluate("window.__samePage = true")
        self.fill_small_run(page, iterations="5")  # below the form's minimum
        page.click("button[type=submit]")

        page.wait_for_selector("#error-iterations")
        assert page.url.endswith("/experiments/syscall-cost/")
        assert page.evaluate("window.__samePage") is True
        assert not Run.objects.exists()

        self.fill_small_run(page)
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=60_000)
        assert Run.objects.count() == 1
        assert page.evaluate("window.__samePage") is True

    def test_without_script_the_form_posts_and_redirects_as_before(self):
        context = self.browser.new_context(java_script_enabled=False)
        page = context.new_page()
        page.goto(f"{self.live_server_url}/experiments/syscall-cost/")
        self.fill_small_run(page)
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        run = Run.objects.get()
        assert page.url.endswith(f"/runs/{run.pk}/")
        wait_for(run, lambda r: r.status == Run.Status.SUCCEEDED, timeout_s=60)
        context.close()
