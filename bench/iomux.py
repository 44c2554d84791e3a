"""select / poll / epoll at 10, 100 and 1,000 descriptors: the io-multiplexing experiment in
the sandbox against a plain C loop outside it, in the same run, with ratios.

The peer is an independent C program compiled here: N pipes, one holding a byte that is never
read (so level-triggered select, poll and epoll report it on every call), and ``--calls`` wait
calls (timeout 0) timed in batches of 100 on the thread's CPU clock (so time spent preempted
on a busy host does not count), the median batch divided by 100. Ours times each call alone between
two clock reads, writes and reads its ready byte around it, and runs under the sandbox's
seccomp filter; the ratio shows what all that adds. Run from the repository root:

    .venv/bin/python bench/iomux.py [--calls 2000] [--reps 3]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpeer import build_peer  # noqa: E402 - needs the path above

COUNTS = (10, 100, 1000)
MECHANISMS = {"select": "select", "poll": "poll", "epoll_lt": "epoll (level-triggered)"}
PEER_SOURCE = r"""
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

/* usage: peer select|poll|epoll_lt N CALLS -> ns per call over one timed loop */
int main(int argc, char **argv) {
    if (argc != 4) return 2;
    const char *mech = argv[1];
    int n = atoi(argv[2]);
    long calls = atol(argv[3]);
    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
    int *reads = calloc(n, sizeof(int)), max_fd = 0, ready_write = -1;
    for (int i = 0; i < n; i++) {
        int p[2];
        if (pipe(p) < 0) { perror("pipe"); return 1; }
        /* write ends far above the read ends, so N read ends stay under FD_SETSIZE */
        int w = fcntl(p[1], F_DUPFD, 4096);
        if (w < 0) { perror("fcntl"); return 1; }
        close(p[1]);
        reads[i] = p[0];
        if (p[0] > max_fd) max_fd = p[0];
        if (i == n / 2) ready_write = w;
    }
    if (write(ready_write, "x", 1) != 1) return 1;
    fd_set set, work;
    struct pollfd *pfds = calloc(n, sizeof(*pfds));
    struct epoll_event *events = calloc(n, sizeof(*events));
    int ep = epoll_create1(0);
    FD_ZERO(&set);
    for (int i = 0; i < n; i++) {
        pfds[i].fd = reads[i];
        pfds[i].events = POLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = reads[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, reads[i], &ev);
        if (reads[i] < FD_SETSIZE) FD_SET(reads[i], &set);
    }
    if (strcmp(mech, "select") == 0 && max_fd >= FD_SETSIZE) return 3;
    /* Batches of BATCH calls, each timed as one loop on this thread's CPU clock (time spent
     * preempted on a shared host is not the call's cost), and the median batch reported. */
    enum { BATCH = 100 };
    long batches = calls / BATCH > 0 ? calls / BATCH : 1;
    double *per_call = calloc(batches, sizeof(double));
    long got = 0;
    for (long j = 0; j < batches; j++) {
        struct timespec a, b;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        for (long i = 0; i < BATCH; i++) {
            if (mech[0] == 's') {
                struct timeval zero = {0, 0};
                work = set;
                got += select(max_fd + 1, &work, NULL, NULL, &zero);
            } else if (mech[0] == 'p') {
                got += poll(pfds, n, 0);
            } else {
                got += epoll_wait(ep, events, n, 0);
            }
        }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
        per_call[j] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / BATCH;
    }
    if (got != batches * BATCH) { fprintf(stderr, "reported %ld ready\n", got); return 1; }
    for (long j = 1; j < batches; j++) { /* insertion sort: a few dozen values */
        double v = per_call[j];
        long k = j - 1;
        while (k >= 0 && per_call[k] > v) { per_call[k + 1] = per_call[k]; k--; }
        per_call[k + 1] = v;
    }
    printf("%.1f\n", per_call[batches / 2]);
    return 0;
}
"""
OUR_ROW = re.compile(r"^(.+?) \(C\), ([\d,]+) descriptors\s+([\d,.]+)\s+ns/call", re.MULTILINE)


def peer_ns(binary: Path, mechanism: str, count: int, calls: int, reps: int) -> float:
    values = [
        float(
            subprocess.run(
                [str(binary), mechanism, str(count), str(calls)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for _ in range(reps)
    ]
    return statistics.median(values)


def ours_ns(calls: int, reps: int) -> dict[tuple[str, int], float]:
    """Median over ``reps`` sandboxed runs of each row's median ns per call."""
    runs: dict[tuple[str, int], list[float]] = {}
    for _ in range(reps):
        done = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "run_experiment",
                "io-multiplexing",
                "--param",
                "mechanisms=" + ",".join(MECHANISMS),
                "--param",
                "counts=" + ",".join(map(str, COUNTS)),
                "--param",
                "active=1",
                "--param",
                f"calls={calls}",
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            env=os.environ,
        )
        for label, count, median in OUR_ROW.findall(done.stdout):
            runs.setdefault((label, int(count.replace(",", ""))), []).append(
                float(median.replace(",", ""))
            )
    return {key: statistics.median(values) for key, values in runs.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="wait calls per point")
    parser.add_argument("--reps", type=int, default=3, help="runs of each side")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        binary = build_peer(Path(directory), PEER_SOURCE)
        ours = ours_ns(args.calls, args.reps)
        print(f"{'mechanism':<26}{'N':>6}{'C peer ns':>12}{'ours ns':>12}{'ours/peer':>11}")
        for mechanism, label in MECHANISMS.items():
            for count in COUNTS:
                peer = peer_ns(binary, mechanism, count, args.calls, args.reps)
                mine = ours.get((label, count))
                ratio = f"{mine / peer:.2f}" if mine else "—"
                shown = f"{mine:,.0f}" if mine else "missing"
                print(f"{label:<26}{count:>6}{peer:>12,.0f}{shown:>12}{ratio:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
