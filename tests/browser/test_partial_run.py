"""A person cancels a run half-way: the page keeps its chart and shows what it measured until
then, marked partial, live and after a reload."""

from sysops.models import Run
from tests.browser.live import BrowserLiveServerTestCase


class CancelledRunTest(BrowserLiveServerTestCase):
    def test_it_shows_the_partial_chart_and_rows_of_a_cancelled_run(self):
        page = self.submit("epoll-echo", fill={"clients": "4", "duration_s": "30"})
        page.wait_for_function(
            "() => Number(document.getElementById('run-live').dataset.points || 0) >= 3",
            timeout=60_000,
        )
        page.click("#run-actions .cancel button")
        page.wait_for_selector("#run-status[data-status=cancelled]", timeout=60_000)
        page.wait_for_selector("#run-results table.results", timeout=30_000)
        for _ in range(2):  # live, then from the database after a reload
            assert page.locator("#chart-rps canvas").count() >= 1
            assert int(page.locator("#run-live").get_attribute("data-points")) >= 3
            assert "partial" in page.locator("#run-results .partial-note").inner_text()
            metrics = page.locator("#run-results tbody th").all_inner_texts()
            assert any("requests" in m and "partial" in m for m in metrics), metrics
            page.reload()
            page.wait_for_function(
                "() => Number(document.getElementById('run-live').dataset.points || 0) >= 3"
            )
        assert Run.objects.get().status == Run.Status.CANCELLED
        page.close()
