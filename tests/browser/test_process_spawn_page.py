"""A person runs process-spawn from its form and sees the sweep chart and the results table."""

from sysops.models import Run

from .live import BrowserLiveServerTestCase


class ProcessSpawnPageTest(BrowserLiveServerTestCase):
    def test_it_draws_cost_against_parent_size_and_the_slope_table(self):
        page = self.submit(
            "process-spawn",
            uncheck=[("methods", m) for m in ("fork_execve", "vfork_execve", "subprocess")],
            fill={"parent_sizes_mib": "0, 16, 64", "repetitions": "5", "warmup": "0"},
        )

        # The sweep chart: one x per parent size, one line per method, in the methods' names.
        page.wait_for_selector("#run-results table.results", timeout=120_000)
        # The status may arrive in the frame after the table's.
        page.wait_for_selector("#run-status[data-status=succeeded]", timeout=10_000)
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
