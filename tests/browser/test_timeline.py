"""The timeline of a traced epoll-echo run: the client's and the server's process side by side,
zoomable, with each slice's call under the pointer."""

from sysops.models import Run
from tests.browser.live import BrowserLiveServerTestCase


class TimelineTest(BrowserLiveServerTestCase):
    def test_it_shows_the_client_and_the_server_as_two_pids(self):
        page = self.submit_traced_epoll_echo(viewport={"width": 1000, "height": 900})
        # Loaded live, when the traced pass ends, without a reload.
        page.wait_for_selector("#timeline[data-loaded='1']", timeout=120_000)
        assert Run.objects.get().trace["status"] == "done"
        timeline = page.locator("#timeline")
        pids = timeline.get_attribute("data-pids").split(",")
        assert len(pids) == 2 and len(set(pids)) == 2, pids
        labels = page.evaluate(
            "async () => (await (await fetch(document.getElementById('timeline').dataset.url))"
            ".json()).tracks.map((t) => t.label)"
        )
        assert any("server" in label for label in labels), labels
        assert any("client" in label for label in labels), labels

        whole = page.locator(".timeline-info").inner_text()
        page.click("#timeline [data-zoom=in]")
        zoomed = page.locator(".timeline-info").inner_text()
        assert zoomed != whole  # half the span shown
        # Somewhere on the server's track, the pointer names a call.
        canvas = page.locator("#timeline canvas")
        box = canvas.bounding_box()
        lane_y = box["y"] + 22 + 30 + 20  # axis, the first track, into the second's slices
        for x in range(2, int(box["width"]) - 2, 3):
            page.mouse.move(box["x"] + x, lane_y)
            if "pid" in page.locator(".timeline-tip").inner_text():
                break
        assert "pid" in page.locator(".timeline-tip").inner_text()
        page.close()
