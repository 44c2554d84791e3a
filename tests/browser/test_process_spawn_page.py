"""A person runs process-spawn from its form and sees the sweep chart and the results table."""

import pytest
from channels.testing import ChannelsLiveServerTestCase

from sysops.models import Run


class ProcessSpawnPageTest(ChannelsLiveServerTestCase):
    serve_static = True

    @pytest.fixture(autouse=True)
    def _browser(self, browser):
        self.browser = browser

    def test_it_draws_cost_against_parent_size_and_the_slope_table(self):
        page = self.browser.new_page()
        page.goto(f"{self.live_server_url}/experiments/process-spawn/")
        for method in ("fork_execve", "vfork_execve", "subprocess"):
            page.uncheck(f"input[name=methods][value={method}]")
        page.fill("input[name=parent_sizes_mib]", "0, 16, 64")
        page.fill("input[name=repetitions]", "5")
        page.fill("input[name=warmup]", "0")
        page.click("button[type=submit]")
        page.wait_for_url("**/runs/*/")

        # The sweep chart: one x per parent size, one line per method, in the methods' names.
        page.wait_for_selector("#run-results table.results", timeout=120_000)
        assert page.locator("#run-status").get_attribute("data-status") == "succeeded"
        page.wait_for_function(
            "() => Number(document.getElementById('run-live').dataset.points || 0) >= 6"
        )
        sweep = page.locator("#chart-cycle")
        assert "spawn to reaped" in sweep.locator("figcaption").inner_text()
        assert sweep.locator("canvas").count() >= 1
        legend = sweep.locator(".u-legend").inner_text()
        assert "fork + _exit (µs)" in legend and "posix_spawn (µs)" in legend
        assert "parent memory (MiB)" in sweep.inner_text()

        metrics = page.locator("#run-results tbody th").all_inner_texts()
        assert "fork + _exit: cost per MiB of parent" in metrics
        assert "posix_spawn: cost per MiB of parent" in metrics
        assert any(m.startswith("fork + _exit from a 64 MiB parent") for m in metrics)
        assert "µs/MiB" in page.locator("#run-results").inner_text()

        run = Run.objects.get()
        assert run.params["parent_sizes_mib"] == [0, 16, 64]
        assert run.params["methods"] == ["fork_exit", "posix_spawn"]
        page.close()
