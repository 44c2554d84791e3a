"""Every page at a phone's width (390 px): nothing wider than the screen, wide things scroll
inside their own box, charts follow their container."""

from sysops.experiments import registry
from sysops.models import Run
from tests.browser.live import BrowserLiveServerTestCase
from tests.browser.phone import PHONE, assert_fits


class PhoneWidthTest(BrowserLiveServerTestCase):
    def traced_epoll_run(self):
        page = self.submit_traced_epoll_echo(viewport=PHONE)
        page.wait_for_selector("#trace[data-status=done]", timeout=120_000)
        page.wait_for_selector("#run-results table.results", timeout=30_000)
        page.wait_for_function("() => document.querySelectorAll('#trace-lines .tl').length > 0")
        return page

    def test_it_fits_every_page_in_390_px(self):
        page = self.traced_epoll_run()
        run = Run.objects.get()
        assert run.status == Run.Status.SUCCEEDED
        assert page.locator("#chart-rps canvas").count() >= 1
        assert_fits(page, "a finished traced run")
        # The trace lines and the results table scroll sideways inside their own boxes.
        for selector in ("#trace-lines", "#run-results table.results"):
            box = page.evaluate(
                "(s) => { const el = document.querySelector(s); const st = getComputedStyle(el);"
                " return {x: st.overflowX, w: el.getBoundingClientRect().right}; }",
                selector,
            )
            assert box["x"] in ("auto", "scroll") and box["w"] <= PHONE["width"], (selector, box)
        # A chart follows its container: wider window, wider chart; back, and it fits again.
        narrow = page.evaluate("document.querySelector('#chart-rps canvas').clientWidth")
        assert narrow <= PHONE["width"]
        page.set_viewport_size({"width": 1000, "height": 844})
        page.wait_for_function(
            f"() => document.querySelector('#chart-rps canvas').clientWidth > {narrow + 50}"
        )
        page.set_viewport_size(PHONE)
        page.wait_for_function(
            f"() => document.querySelector('#chart-rps canvas').clientWidth <= {narrow}"
        )
        assert_fits(page, "the run page after a resize")

        pages = ["/", "/runs/", "/login/", "/no-such-page/", "/runs/999999/", "/runs/import/"]
        pages += [f"/compare/?run={run.pk}"]  # one run cannot be compared: a refusal page
        pages += [f"/experiments/{exp.slug}/" for exp in registry.catalog()]
        for path in pages:
            response = page.goto(self.live_server_url + path)
            assert response.status < 500, (path, response.status)
            assert_fits(page, path)
        # A form with its errors showing is still a phone-width page.
        page.goto(f"{self.live_server_url}/experiments/epoll-echo/")
        page.fill("input[name=clients]", "100000")
        page.click("button[type=submit]")
        page.wait_for_selector("#error-clients")
        assert_fits(page, "a form with errors")
        page.close()
