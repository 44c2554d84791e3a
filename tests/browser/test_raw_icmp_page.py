"""A person runs raw-icmp from its form and sees the RTT chart grow and the packet diagrams."""

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run

NARROW_WIDTH_PX = 390


class RawIcmpPageTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def test_it_shows_the_rtt_chart_and_the_packet_diagrams(self):
        page = self.browser.new_page()
        page.goto(f"{self.live_server_url}/experiments/raw-icmp/")
        page.fill("input[name=count]", "300")
        page.fill("input[name=payload_bytes]", "64")
        page.fill("input[name=interval_ms]", "5")
        page.fill("input[name=ttl]", "7")
        page.select_option("select[name=ip_options]", "record_route")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")

        # RTT points arrive while the echoes are still going.
        page.wait_for_function(
            "() => Number(document.getElementById('run-live').dataset.points || 0) > 0",
            timeout=60_000,
        )
        assert page.locator("#chart-rtt canvas").count() >= 1

        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=120_000)
        page.wait_for_selector("#ip-packets figure.packet table.grid")
        figures = page.locator("#ip-packets figure.packet")
        assert figures.count() == 3  # our first request, the first and the last reply
        reply = figures.nth(1)
        assert "echo reply #1" in reply.locator("figcaption").inner_text()
        labels = reply.locator("td .l").all_inner_texts()
        for label in ("version", "IHL", "TTL", "protocol", "header checksum", "source address"):
            assert label in labels
        assert "route slot 1" in labels and "identifier" in labels and "sequence" in labels
        assert "45 00" not in reply.inner_text()  # IHL 15 with record route: 4f
        assert "4f 00" in reply.locator("td.hex").first.inner_text()
        request_ttl = figures.nth(0).locator("td.f-ttl .v").inner_text()
        assert request_ttl == "7"
        assert page.locator("#ip-packets table.packets tbody tr").count() == 300

        # Readable on a phone: the diagram fits, the hex moves below it.
        page.set_viewport_size({"width": NARROW_WIDTH_PX, "height": 800})
        grid_width = reply.locator("table.grid").evaluate("e => e.getBoundingClientRect().width")
        assert grid_width <= NARROW_WIDTH_PX
        assert reply.locator("pre.hexdump").is_visible()

        assert Run.objects.get().status == Run.Status.SUCCEEDED
        page.close()
