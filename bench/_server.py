"""A throwaway app server for the end-to-end benchmarks: its own database, real daphne, real
embedded agent, test experiments enabled; and a headless Chromium to watch it with."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from sysops.worker.toolkit import stats  # noqa: E402
from tests.helpers.server import daphne_server  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextlib.contextmanager
def app_server(port: int | None = None, var_dir: str | None = None) -> Iterator[str]:
    """Yields the base URL of a fresh server (tests/helpers/server.py: its own database, the
    request limits and the embedded agent, on ``port`` or a free one); everything it made is
    removed afterwards. With ``var_dir``, the server uses that directory (and the database in
    it) instead of a new one, and leaves it."""
    with daphne_server(port=port, var_dir=var_dir) as server:
        yield server.url


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank ``q``-th percentile (0–100) of unsorted values: the toolkit's."""
    return stats.percentile(sorted(values), q / 100)


# Records every main-thread task over 50 ms the page has, from its load on.
LONG_TASKS = """
window.__longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
}).observe({ type: "longtask", buffered: true });
"""


def start_traced_getppid_loop(page: Any, base: str, calls: int) -> None:
    """Submit the test-only workload form (a getppid loop of ``calls`` calls, fully traced)
    and wait for the run page."""
    page.goto(f"{base}/experiments/workload/")
    page.select_option("select[name=case]", "getppid_loop")
    page.fill("input[name=count]", str(calls))
    page.select_option("select[name=trace]", "full")
    page.click("button[type=submit]")
    page.wait_for_url("**/runs/*/")


def stored_trace_run(var_dir: str, events: int) -> Any:
    """Set this process up with a database in ``var_dir`` holding one finished full-trace run of
    ``events`` workload events (tests/helpers/stored_trace.py: real parser, real recorder)."""
    os.environ.update(
        SYSOPS_VAR_DIR=var_dir,
        SYSOPS_TEST_EXPERIMENTS="1",
        DJANGO_SETTINGS_MODULE="playground.settings",
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from sysops.models import Run
    from tests.helpers.stored_trace import store_trace

    call_command("migrate", verbosity=0)
    run = Run.objects.create(
        experiment="workload", params={}, status=Run.Status.RUNNING, trace_mode="full"
    )
    started = time.perf_counter()
    stored = store_trace(run, events)
    print(f"stored {stored:,} events in {time.perf_counter() - started:.0f} s")
    run.refresh_from_db()
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.SUCCEEDED, trace={**run.trace, "status": "done"}
    )
    run.refresh_from_db()
    return run
