"""A person runs an experiment, runs it again with one change, then picks both runs on the
history page and compares them: both runs drawn on one chart, at desktop and phone width."""

from sysops.models import Run
from tests.browser.live import BrowserLiveServerTestCase

FINISHED = "() => document.getElementById('run-status').dataset.status === 'succeeded'"


class ComparePageTest(BrowserLiveServerTestCase):
    def test_it_runs_again_with_a_change_and_compares_from_the_history(self):
        page = self.submit(
            "syscall-cost",
            uncheck=[("layers", "python"), ("layers", "ctypes")],
            fill={"iterations": "5000", "repetitions": "5", "warmup": "0"},
        )
        page.wait_for_function(FINISHED, timeout=120_000)
        first = Run.objects.get()

        # Run again with one change: the form starts from the run, the change is listed.
        page.click("#run-again-changes")
        page.wait_for_url(f"**/experiments/syscall-cost/?from={first.pk}")
        assert page.locator("#param-diff-list li").count() == 0
        page.fill("input[name=iterations]", "10000")
        page.wait_for_function(
            "() => document.querySelectorAll('#param-diff-list li').length === 1"
        )
        assert "5000 → 10000" in page.locator("#param-diff-list li").inner_text()
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        page.wait_for_function(FINISHED, timeout=120_000)
        second = Run.objects.exclude(pk=first.pk).get()
        assert second.parent_id == first.pk
        assert "iterations: 5000 → 10000" in page.locator("#run-parent").inner_text()

        # Pick both on the history page and compare.
        page.goto(f"{self.live_server_url}/runs/")
        page.check(f"input[name=run][value='{first.pk}']")
        page.check(f"input[name=run][value='{second.pk}']")
        page.click("#compare-pick button[type=submit]")
        page.wait_for_url(f"**/compare/{first.pk},{second.pk}/")
        page.wait_for_function(
            "() => document.getElementById('compare-charts').dataset.drawn === '1'"
        )
        assert page.locator("#chart-cost canvas").count() >= 1
        legend = page.locator("#chart-cost .u-legend").inner_text()
        assert f"run {first.pk}: native" in legend and f"run {second.pk}: native" in legend
        assert "iterations" in page.locator("#param-diff tr.differs").first.inner_text()

        # At phone width the page stays inside the screen: wide tables scroll in their own box.
        phone = self.browser.new_page(viewport={"width": 390, "height": 844})
        phone.goto(page.url)
        phone.wait_for_function(
            "() => document.getElementById('compare-charts').dataset.drawn === '1'"
        )
        assert phone.evaluate("document.getElementById('compare').scrollWidth") <= 390
        phone.goto(f"{self.live_server_url}/runs/")
        assert phone.evaluate("document.querySelector('main').scrollWidth") <= 390
        phone.close()
        page.close()
