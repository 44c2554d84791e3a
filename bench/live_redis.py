"""Live path over Redis against the in-memory layer: a sandboxed worker emits --samples samples as
fast as it can; a websocket viewer (``channels.testing.WebsocketCommunicator`` on the real ASGI
application, in a process of its own: tests/scaled/viewer.py) counts what arrives.

- channels_redis: the scaled mode. A standalone agent publishes the runner's batches to a private
  Redis; the viewer's consumer receives them from it.
- in-memory: the embedded mode's path. The viewer's process runs the embedded agent, which hands
  the runner's batches to the in-memory layer on its own event loop.

Both on the same private PostgreSQL (tests/scaled/services.py), interleaved, --repeat times each.
Prints samples/s from the first to the last live frame (median), the ratio Redis / in-memory,
and checks that the viewer ended with every sample, in order, and that the database holds them.

    PYTHONPATH=. .venv/bin/python bench/live_redis.py [--samples 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sysops.worker.toolkit.stats import Distribution  # noqa: E402
from tests.scaled.services import Services, Stack  # noqa: E402

# Runs are pinned so that each is claimed by the agent of the path it measures.
REDIS_AGENT = "bench-redis"
EMBEDDED_AGENT = "bench-embedded"
HELD = "bench-held"  # no agent: the run waits while its viewer connects


def one_run(stack: Stack, samples: int, *, embedded: bool) -> dict[str, Any]:
    from sysops.models import Run, SampleChunk

    run = Run.objects.create(experiment="synthetic", params={"samples": samples}, pinned_host=HELD)
    env = {"SYSOPS_HOST_NAME": EMBEDDED_AGENT} if embedded else {}
    viewer = stack.start_viewer(run.pk, embedded=embedded, **env)
    if embedded:
        # The embedded agent starts with the viewer's first connection, inside its process.
        Run.objects.filter(pk=run.pk).update(pinned_host=EMBEDDED_AGENT)
        viewer.wait_ready()
    else:
        viewer.wait_ready()
        Run.objects.filter(pk=run.pk).update(pinned_host=REDIS_AGENT)
    seen = viewer.seen()
    run.refresh_from_db()
    expected = [["synthetic", i, i % 97] for i in range(samples)]
    assert seen["status"] == run.status == Run.Status.SUCCEEDED, (seen["error"], run.reason)
    assert seen["samples"] == expected, "the viewer's samples differ from those sent"
    stored = sum(len(c.samples) for c in SampleChunk.objects.filter(run=run))
    assert stored == samples, (stored, samples)
    span_s = seen["last_live_s"] - seen["first_live_s"]
    return {
        "rate": seen["live_samples"] / span_s if span_s > 0 else float("nan"),
        "live": seen["live_samples"],
        "frames": seen["live_frames"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("SYSOPS_TEST_EXPERIMENTS", "1")
    with Services.running() as services:
        stack = services.new_stack()
        try:
            os.environ["DATABASE_URL"] = stack.database_url
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
            import django

            django.setup()
            stack.start_agent(host_name=REDIS_AGENT)
            results: dict[str, list[dict[str, Any]]] = {"channels_redis": [], "in-memory": []}
            for _ in range(args.repeat):
                results["channels_redis"].append(one_run(stack, args.samples, embedded=False))
                results["in-memory"].append(one_run(stack, args.samples, embedded=True))
        finally:
            stack.close()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (figures scale with what else runs here)")
    medians = {}
    for layer, runs in results.items():
        dist = Distribution.of([r["rate"] for r in runs])
        medians[layer] = dist.median
        live = ", ".join(f"{r['live']:,} in {r['frames']} frames" for r in runs)
        print(
            f"{layer:>14}: median {dist.median:,.0f} samples/s (min {dist.min:,.0f}, max "
            f"{dist.max:,.0f}; {args.samples:,} samples a run, every one received in order and "
            f"stored; live: {live})"
        )
    ratio = medians["channels_redis"] / medians["in-memory"]
    print(f"channels_redis / in-memory: {ratio:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
