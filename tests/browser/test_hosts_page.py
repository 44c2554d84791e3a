"""The dashboard's hosts section at phone width: the embedded agent's host (alive) and a gone
host with a long name, their fingerprints folded, nothing wider than the screen."""

import time

from django.utils import timezone

from sysops.models import Host, HostAgent
from tests.browser.live import BrowserLiveServerTestCase

NARROW_WIDTH_PX = 390
REGISTER_TIMEOUT_S = 60.0
LONG_NAME = "build-runner-" + "x" * 60


class HostsSectionTest(BrowserLiveServerTestCase):
    def test_it_lists_hosts_readably_at_phone_width(self):
        HostAgent.objects.create(
            name=LONG_NAME,
            agent_id=f"{LONG_NAME}:1",
            host=Host.for_fingerprint({"hostname": LONG_NAME, "cpu_model": "<b>cpu</b>"}),
            sandbox={"can_sandbox": False, "reason": "no user namespaces", "checks": []},
            stopped_at=timezone.now(),
        )
        page = self.browser.new_page(viewport={"width": NARROW_WIDTH_PX, "height": 800})
        # The first page view starts the embedded agent, which then registers its host.
        deadline = time.monotonic() + REGISTER_TIMEOUT_S
        page.goto(f"{self.live_server_url}/")
        while page.locator("#hosts .host-alive, #hosts .host-busy").count() == 0:
            assert time.monotonic() < deadline, page.locator("#hosts").inner_text()
            time.sleep(0.5)
            page.reload()

        hosts = page.locator("#hosts")
        assert "gone" in hosts.locator(".host", has_text="build-runner-").inner_text()
        assert "<b>cpu</b>" in hosts.inner_text()  # shown as text, not markup
        for summary in hosts.locator("summary").all():
            summary.click()
        widths = hosts.locator(".host").evaluate_all(
            "cards => cards.map(c => c.getBoundingClientRect().right)"
        )
        assert widths and max(widths) <= NARROW_WIDTH_PX
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW_WIDTH_PX

        page.goto(f"{self.live_server_url}/experiments/syscall-cost/")
        options = page.locator("select[name=host] option").all_inner_texts()
        assert options[0] == "any host" and options[-1].startswith("all hosts")
        assert LONG_NAME not in options
        page.close()
