"""Under the Content-Security-Policy, pages work and the browser refuses nothing of ours."""

from tests.browser.live import BrowserLiveServerTestCase


class ContentSecurityPolicyTest(BrowserLiveServerTestCase):
    def test_a_run_page_goes_live_and_nothing_is_refused(self):
        messages: list[str] = []
        page = self.browser.new_page()
        page.on("console", lambda message: messages.append(message.text))
        page.goto(f"{self.live_server_url}/")
        page.goto(f"{self.live_server_url}/experiments/synthetic/")
        page.fill("input[name=samples]", "2000")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=120_000)
        # Charts (uPlot) and the live fragments (htmx) ran: the script files were allowed.
        page.wait_for_function(
            "() => Number(document.getElementById('run-live').dataset.points || 0) > 0",
            timeout=30_000,
        )
        refused = [m for m in messages if "Content Security Policy" in m or "Refused" in m]
        assert not refused, refused
