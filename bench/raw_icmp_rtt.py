"""ICMP echo round trip: raw-icmp in the sandbox against ``ping`` on the host, same sizes.

For each payload size, ``ping -c N -s SIZE -i INTERVAL 127.0.0.1`` (iputils, on the host's
loopback) and then a real raw-icmp run (through the runner, in the sandbox's own loopback) send
the same number of echoes at the same interval; the medians and their ratio are printed, with
the experiment's kernel turnaround (SO_TIMESTAMPNS) beside them. Run from the repository root:

    .venv/bin/python bench/raw_icmp_rtt.py [--count 200] [--sizes 0,56,1400] [--interval-ms 10]

Exits 0 with a message when ping is missing (Debian: iputils-ping; `scripts/setup.sh bench`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

PING_TIME = re.compile(r"icmp_seq=\d+ .*time=([0-9.]+) ms")
PING_TIMEOUT_S = 300
RTT_METRIC = "round trip, sendto → reply read (Python, raw socket)"
STAMPED_METRIC = "round trip as ping reports it, sendto → reply stamped by the kernel"
KERNEL_METRIC = "kernel turnaround, request in → reply in (SO_TIMESTAMPNS)"
US_PER_MS = 1_000
# ping carries its send time (a struct timeval) in the payload: with less it cannot time echoes.
PING_MIN_PAYLOAD_BYTES = 16


def ping_rtts_us(ping: str, count: int, size: int, interval_ms: int) -> list[float]:
    """Per-echo round trips (µs) from ping's own lines, one per reply."""
    completed = subprocess.run(
        [ping, "-n", "-c", str(count), "-s", str(size), "-i", f"{interval_ms / 1000:g}"]
        + ["127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=PING_TIMEOUT_S,
        check=False,
    )
    rtts = [float(m.group(1)) * US_PER_MS for m in PING_TIME.finditer(completed.stdout)]
    if completed.returncode != 0 or not rtts:
        raise RuntimeError(f"ping failed ({completed.returncode}): {completed.stderr.strip()}")
    return rtts


def sandbox_rows(count: int, size: int, interval_ms: int) -> dict[str, dict]:
    """The result rows of one real raw-icmp run in the sandbox."""
    from sysops import sandbox
    from sysops.agent.runner import execute
    from sysops.models import Run

    params = {
        "count": count,
        "payload_bytes": size,
        "interval_ms": interval_ms,
        "ttl": 64,
        "hdrincl": False,
        "ip_options": "none",
    }
    sandbox.set_child_subreaper()
    run = Run.objects.create(experiment="raw-icmp", params=params, status=Run.Status.RUNNING)
    run = execute(run.pk, lambda group, message: None)
    if run.status != Run.Status.SUCCEEDED:
        raise RuntimeError(f"raw-icmp run {run.status}: {run.reason}")
    return {row["metric"]: row for row in run.results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="echoes per size (≤ 1000)")
    parser.add_argument("--sizes", default="16,56,1400", help="payload sizes in bytes")
    parser.add_argument("--interval-ms", type=int, default=10, help="between sends (≥ 2)")
    args = parser.parse_args(argv)
    ping = shutil.which("ping")
    if ping is None:
        print("ping is not installed (Debian: apt-get install iputils-ping); nothing to compare")
        return 0
    sizes = [int(size) for size in args.sizes.split(",")]
    if min(sizes) < PING_MIN_PAYLOAD_BYTES:
        parser.error(f"ping times echoes only with ≥ {PING_MIN_PAYLOAD_BYTES} B of payload")

    with tempfile.TemporaryDirectory(prefix="sysops-bench-") as var_dir:
        os.environ["SYSOPS_VAR_DIR"] = var_dir
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        print(
            f"{args.count} echoes per size, every {args.interval_ms} ms, to 127.0.0.1; medians "
            "in µs. ping: the host's loopback, send → reply's kernel receive stamp. raw-icmp, "
            "the sandbox's loopback: 'stamped' measured as ping does, 'python' until recvmsg "
            "returned the reply, 'kernel' request stamp → reply stamp."
        )
        print(
            f"{'payload B':>9}  {'ping':>7}  {'stamped':>7}  {'ratio':>6}  {'python':>7}"
            f"  {'ratio':>6}  {'kernel':>7}"
        )
        for size in sizes:
            ping_us = statistics.median(ping_rtts_us(ping, args.count, size, args.interval_ms))
            rows = sandbox_rows(args.count, size, args.interval_ms)
            stamped_us, python_us, kernel_us = (
                rows[metric]["dist"]["median"]
                for metric in (STAMPED_METRIC, RTT_METRIC, KERNEL_METRIC)
            )
            print(
                f"{size:>9}  {ping_us:>7.1f}  {stamped_us:>7.1f}  {stamped_us / ping_us:>5.2f}×"
                f"  {python_us:>7.1f}  {python_us / ping_us:>5.2f}×  {kernel_us:>7.1f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
