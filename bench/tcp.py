"""TCP on loopback, ours against independent tools in one run: round trips against
``sockperf ping-pong --tcp`` and bulk throughput against ``iperf3``, at the same message sizes.

For each size: sockperf's median round trip (it reports half round trips; doubled here), our
native C loop's median round trip outside the sandbox (the probe run directly, like sockperf on
the host) and inside it (``manage.py run_experiment tcp --json``: the figure the page shows,
seccomp filter included); then iperf3's received throughput and ours, outside and inside. Prints
each figure and the ratio ours/peer (round trip: above 1 = we are slower; throughput: below 1 =
we move less). Run from the repository root:

    .venv/bin/python bench/tcp.py [--sizes 64,1024,16384,32768] [--seconds 2]

Exits 0 with a message for each tool that is missing (Debian: sockperf, iperf3). sockperf 3.7's
TCP ping-pong fails at 64 KiB messages, hence the default sizes stop at 32 KiB.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SOCKPERF_MEDIAN = re.compile(r"percentile 50\.000 =\s*([0-9.]+)")
SERVER_START_S = 0.5
TOOL_TIMEOUT_S = 120
COUNT_MAX = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(argv: list[str]) -> Iterator[None]:
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(SERVER_START_S)
    try:
        yield
    finally:
        process.terminate()
        process.wait(TOOL_TIMEOUT_S)


def sockperf_rtt_us(sockperf: str, size: int, seconds: float) -> float | None:
    port = free_port()
    with server([sockperf, "sr", "--tcp", "-i", "127.0.0.1", "-p", str(port)]):
        completed = subprocess.run(
            [sockperf, "pp", "--tcp", "-i", "127.0.0.1", "-p", str(port), "-m", str(size)]
            + ["-t", str(max(1, round(seconds)))],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
    match = SOCKPERF_MEDIAN.search(completed.stdout + completed.stderr)
    # sockperf's latency is half a round trip.
    return 2 * float(match.group(1)) if match else None


def iperf3_mb_s(iperf3: str, size: int, seconds: float) -> float | None:
    port = free_port()
    with server([iperf3, "-s", "-1", "-B", "127.0.0.1", "-p", str(port)]):
        completed = subprocess.run(
            [iperf3, "-c", "127.0.0.1", "-p", str(port), "-l", str(size), "-J"]
            + ["-t", str(max(1, round(seconds)))],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
    try:
        return json.loads(completed.stdout)["end"]["sum_received"]["bits_per_second"] / 8e6
    except (ValueError, KeyError):
        return None


def tcp_params(measurement: str, size: int, seconds: float) -> dict[str, Any]:
    return {
        "measurement": measurement,
        "message_bytes": size,
        "count": COUNT_MAX,
        "duration_s": seconds,
        "layers": ["native"],
    }


def ours_outside(measurement: str, size: int, seconds: float) -> float:
    from sysops.experiments.tcp import probe
    from tests.probes.harness import run_probe

    events = run_probe(probe.run, tcp_params(measurement, size, seconds))
    return primary_value(events.of("result")[0]["rows"])


def ours_inside(measurement: str, size: int, seconds: float) -> float:
    argv = [sys.executable, "manage.py", "run_experiment", "tcp", "--json"]
    for name, value in tcp_params(measurement, size, seconds).items():
        argv += ["--param", f"{name}={','.join(value) if isinstance(value, list) else value}"]
    completed = subprocess.run(
        argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, check=True
    )
    return primary_value(json.loads(completed.stdout)["results"])


def primary_value(rows: list[dict[str, Any]]) -> float:
    """The native layer's row: the median round trip (µs) or the throughput (MB/s)."""
    return next(r["value"] for r in rows if r.get("layer") == "native")


def show(value: float | None) -> str:
    return f"{value:.1f}" if value else "—"


def ratio(ours: float | None, peer: float | None) -> str:
    return f"{ours / peer:.2f}×" if ours and peer else "—"


def compare(
    title: str,
    peer_name: str,
    measurement: str,
    sizes: list[int],
    seconds: float,
    peer: Callable[[int], float | None],
) -> None:
    """One table: per size, the peer's figure, ours outside and inside the sandbox, ratios."""
    print(f"{title:<24}{peer_name:>9}   ours (host)   ours (sandbox)   host/peer   sandbox/peer")
    for size in sizes:
        theirs = peer(size)
        outside = ours_outside(measurement, size, seconds)
        inside = ours_inside(measurement, size, seconds)
        print(
            f"{size:>10,} B            {show(theirs):>9}   {outside:>11.1f}"
            f"   {inside:>14.1f}   {ratio(outside, theirs):>9}   {ratio(inside, theirs):>12}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,1024,16384,32768", help="message sizes, bytes")
    parser.add_argument("--seconds", type=float, default=2.0, help="per tool, size and measure")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    sockperf, iperf3 = shutil.which("sockperf"), shutil.which("iperf3")
    for name, path in (("sockperf", sockperf), ("iperf3", iperf3)):
        if path is None:
            print(f"{name} is not installed (Debian: apt-get install {name}); its rows are —.")
    from sysops.native import build

    build.build()
    print(f"kernel {os.uname().release}; loopback; native C loop layer; {args.seconds:g} s each")
    print()
    compare(
        "round trip, median µs",
        "sockperf",
        "rtt",
        sizes,
        args.seconds,
        lambda size: sockperf_rtt_us(sockperf, size, args.seconds) if sockperf else None,
    )
    print()
    compare(
        "throughput, MB/s",
        "iperf3",
        "throughput",
        sizes,
        args.seconds,
        lambda size: iperf3_mb_s(iperf3, size, args.seconds) if iperf3 else None,
    )
    print()
    print(
        "sockperf reports half round trips (doubled here) and disables Nagle; iperf3 sends "
        "-l bytes per write with Nagle on, as our bulk sender does, but its receiver also "
        "reads -l bytes a call and both ends run a select() loop, where ours reads up "
        "to 64 KiB a call with no select: small sizes favour us. A shared machine makes "
        "single runs noisy: compare ratios across repeated runs."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
