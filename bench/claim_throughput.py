"""Claim throughput and latency of the scaled mode, on a private PostgreSQL (fsync on) started for
the run (tests/scaled/services.py, the scaled-mode tests' own servers).

1. The claim statement: 4 processes race ``Run.objects.claim_next`` (fair order, SKIP LOCKED)
   over a queue of --queue runs from 20 users; claims/s, every run claimed exactly once.
2. Real agents: 4 ``manage.py sysops_worker`` (one run at a time each) on --runs queued runs of
   the trivial synthetic probe (1 sample): runs finished/s, every run claimed once, all succeed.
3. Submit to claim: with the 4 agents idle, --submits runs submitted one at a time at random
   moments; created_at → started_at (the claim), median and p95.

    PYTHONPATH=. .venv/bin/python bench/claim_throughput.py [--queue 1000] [--runs 40]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sysops.worker.toolkit.stats import Distribution, percentile, supports  # noqa: E402
from tests.scaled.services import Services, Stack, wait_until  # noqa: E402

AGENTS = 4
USERS = 20
FINISH_TIMEOUT_S = 900.0


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    os.environ.setdefault("SYSOPS_TEST_EXPERIMENTS", "1")
    import django

    django.setup()


def _claimer(database_url: str, name: str, start: Any, out: Any) -> None:
    _setup_django(database_url)
    from sysops.models import Run

    Run.objects.exists()  # connected before the start
    start.wait()
    claimed = 0
    while Run.objects.claim_next(by=name, host_name="bench") is not None:
        claimed += 1
    out.put((name, claimed, time.monotonic()))


def claim_statement(stack: Stack, queue: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connections

    from sysops.models import Run

    users = [get_user_model().objects.create_user(f"user{i}") for i in range(USERS)]
    Run.objects.bulk_create(
        Run(experiment="synthetic", params={"samples": 1}, user=users[i % USERS])
        for i in range(queue)
    )
    connections.close_all()
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(stack.database_url, f"bench:{i}", start, out))
        for i in range(AGENTS)
    ]
    for p in procs:
        p.start()
    time.sleep(3)  # every claimer connected and waiting
    began = time.monotonic()
    start.set()
    results = [out.get(timeout=FINISH_TIMEOUT_S) for _ in procs]
    for p in procs:
        p.join()
    ended = max(at for _, _, at in results)
    claimed = sum(n for _, n, _ in results)
    by = Run.objects.values_list("claimed_by", flat=True)
    assert claimed == queue == by.filter(status=Run.Status.RUNNING).count(), (claimed, queue)
    assert set(by) <= {f"bench:{i}" for i in range(AGENTS)}
    per = ", ".join(f"{n}" for _, n, _ in sorted(results))
    rate = claimed / (ended - began)
    print(
        f"claim statement: {claimed} runs claimed by {AGENTS} processes in "
        f"{ended - began:.2f} s = {rate:,.0f} claims/s (each once; per process: {per}; "
        f"queue of {queue} from {USERS} users)"
    )
    Run.objects.all().delete()
    connections.close_all()


def agents_end_to_end(stack: Stack, runs: int, submits: int) -> None:
    from django.db import connections

    from sysops.models import Run

    connections.close_all()
    ids = [
        Run.objects.create(experiment="synthetic", params={"samples": 1}).pk for _ in range(runs)
    ]
    for _ in range(AGENTS):
        stack.start_agent(max_running=1)  # stopped with the stack
    pending = Run.objects.filter(pk__in=ids).exclude(status__in=Run.TERMINAL)
    wait_until(
        lambda: not pending.exists(),
        timeout_s=FINISH_TIMEOUT_S,
        what="the queue",
        interval_s=0.2,
    )
    done = list(Run.objects.filter(pk__in=ids))
    assert all(r.status == Run.Status.SUCCEEDED for r in done), [r.reason for r in done]
    assert len({r.pk for r in done}) == runs and all(r.claimed_by for r in done)
    first = min(r.started_at for r in done)
    last = max(r.finished_at for r in done)
    span_s = (last - first).total_seconds()
    per_run = Distribution.of([r.duration_s for r in done])
    print(
        f"{AGENTS} agents, {runs} queued trivial runs: {runs / span_s:.2f} runs/s finished "
        f"(first claim to last finish {span_s:.1f} s; one run claim→finish median "
        f"{per_run.median:.2f} s); every run claimed once, all succeeded"
    )

    latencies_s = []
    for _ in range(submits):
        time.sleep(random.uniform(0.5, 2.0))  # agents idle, polling, at a random moment
        run = Run.objects.create(experiment="synthetic", params={"samples": 1})
        wait_until(
            lambda run=run: Run.objects.filter(pk=run.pk, started_at__isnull=False).exists(),
            timeout_s=60,
            what=f"run {run.pk} claimed",
            interval_s=0.02,
        )
        run.refresh_from_db()
        latencies_s.append((run.started_at - run.created_at).total_seconds())
        wait_until(
            lambda run=run: Run.objects.filter(pk=run.pk, status__in=Run.TERMINAL).exists(),
            timeout_s=FINISH_TIMEOUT_S,
            what=f"run {run.pk} finished",
            interval_s=0.1,
        )
    ordered = sorted(latencies_s)
    dist = Distribution.of(ordered)
    p95 = "n/a"
    if supports(len(ordered), 0.95):
        p95 = f"{percentile(ordered, 0.95) * 1000:.0f} ms"
    print(
        f"submit → claim, {AGENTS} idle agents, {len(ordered)} runs: median "
        f"{dist.median * 1000:.0f} ms, p95 {p95}, min {dist.min * 1000:.0f} ms, max "
        f"{dist.max * 1000:.0f} ms (standalone agents poll every second: nothing wakes them "
        "on a submit)"
    )
    connections.close_all()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queue", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--submits", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("SYSOPS_TEST_EXPERIMENTS", "1")
    with Services.running(durable=True) as services:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"PostgreSQL (fsync on) on port {services.postgres.port}, {os.cpu_count()} CPUs, "
            f"load average {load} (figures scale with what else runs here)"
        )
        stack = services.new_stack()
        try:
            _setup_django(stack.database_url)
            claim_statement(stack, args.queue)
            agents_end_to_end(stack, args.runs, args.submits)
        finally:
            stack.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
