"""A person in headless Chromium submits the syscall-cost form and watches the run live."""

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run
from sysops.stages import STAGE_NAMES
from tests.helpers.runs import wait_for


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
        # Some 10 s of the worker's CPU on a quiet host: long enough to watch it progress, and
        # well inside the sandbox's 30 s CPU limit on a host running at half speed (60
        # repetitions were killed by SIGXCPU there).
        page.fill("input[name=iterations]", "200000")
        page.fill("input[name=repetitions]", "25")
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

        # Every stage of its start was stored, the browser's first frame included (the page
        # reported it), in the order a run reaches them; the page's timeline lists them.
        run = wait_for(run, lambda r: "first_frame" in r.stages, timeout_s=10)
        assert [name for name in STAGE_NAMES if name in run.stages] == list(STAGE_NAMES)
        times = [run.stages[name] for name in STAGE_NAMES]
        assert times[:-1] == sorted(times[:-1])
        # The page may show the first event from its snapshot (read once it is stored) before
        # the live batch is out: after the store, then, not necessarily after the publishing.
        assert run.stages["first_stored"] <= run.stages["first_frame"]
        assert times[-1] - times[0] < 60e9
        page.reload()
        timeline = page.locator("#run-timeline")
        timeline.locator("summary").click()
        assert timeline.locator("tbody tr").count() == len(STAGE_NAMES)
        assert "first frame in the browser" in timeline.inner_text()
        page.close()


class TracePaneTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def test_it_shows_trace_lines_the_summary_and_a_failed_calls_meaning(self):
        page = self.browser.new_page()
        # The test-only workload makes known calls, among them a connect that is refused.
        page.goto(f"{self.live_server_url}/experiments/workload/")
        page.select_option("select[name=case]", "calls")
        page.select_option("select[name=trace]", "full")
        # The trace field says what a traced call costs on this host (htmx, on load and change).
        page.wait_for_function(
            "() => document.getElementById('trace-estimate').textContent.includes('µs')",
            timeout=30_000,
        )
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")
        page.wait_for_selector("#trace[data-status=done]", timeout=120_000)
        page.wait_for_function("() => document.querySelectorAll('#trace-lines .tl').length > 0")
        summary = page.locator("#trace-summary").inner_text()
        assert "connect" in summary and "openat" in summary and "total" in summary
        assert "Observer effect" in page.locator("#trace-observer").inner_text()

        page.fill("#trace-name", "open")
        page.wait_for_function(
            "() => { const n = [...document.querySelectorAll('#trace-lines .tl .c')];"
            " return n.length > 0 && n.every(e => e.textContent.includes('open')); }"
        )
        page.fill("#trace-name", "")
        page.check("#trace-failed")
        refused = page.locator("#trace-lines .tl.failed", has_text="ECONNREFUSED")
        refused.first.click()
        detail = page.locator("#trace-detail").inner_text()
        assert "ECONNREFUSED: Connection refused" in detail
        assert "Manual: man 2 connect" in detail
        # The meaning comes first; the manual is a link to man7.org.
        assert detail.startswith("ECONNREFUSED: Connection refused")
        href = page.locator("#trace-detail a.man").first.get_attribute("href")
        assert href == "https://man7.org/linux/man-pages/man2/connect.2.html"
        assert "htons(9)" in detail
        # The child's calls are under its own pid: filter by it.
        pids = page.evaluate(
            "() => [...new Set([...document.querySelectorAll('#trace-lines .tl .pid')]"
            ".map(e => e.textContent.trim()))]"
        )
        page.uncheck("#trace-failed")
        all_pids = page.wait_for_function(
            "() => { const p = new Set([...document.querySelectorAll('#trace-lines .tl .pid')]"
            ".map(e => e.textContent.trim())); return p.size === 2 && [...p]; }"
        ).json_value()
        assert set(pids) <= set(all_pids)
        # The worker's own calls (writing its result event) are hidden until asked for.
        assert page.locator("#trace-lines .tl.harness").count() == 0
        page.check("#trace-harness")
        page.wait_for_selector("#trace-lines .tl.harness")
        page.close()
