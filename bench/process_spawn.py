"""process-spawn against a plain C loop of the same calls outside the sandbox.

The peer is a small C program compiled here: it maps and writes N MiB (MADV_NOHUGEPAGE, like the
experiment), then times fork + _exit + waitpid and fork + execve(/bin/true) + waitpid cycles.
The experiment runs through the real runner and sandbox (``run_experiment --json``) at the
same parent sizes. Printed: the median spawn-to-reaped time per method and size for both, their
ratio (ours / C; the sandbox's seccomp filter, cgroup and pid namespace are part of ours), and
the per-MiB slope of each. Run from the repository root, SYSOPS_SANDBOX_UID_BASE set:

    .venv/bin/python bench/process_spawn.py [--sizes 0,64,256] [--reps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cpeer import build_peer  # noqa: E402 - needs the path above

from sysops.worker.toolkit.sweep import fit_line  # noqa: E402 - needs the path above

METHODS = ("fork_exit", "fork_execve")
TARGET = "/bin/true"
RUN_TIMEOUT_S = 900

PEER_SOURCE = r"""
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* usage: peer MIB REPS WARMUP; prints "<method> <median ns>" per method */
int main(int argc, char **argv) {
    size_t bytes = (size_t)atol(argv[1]) << 20;
    int reps = atoi(argv[2]), warmup = atoi(argv[3]);
    char *argv_child[] = {"/bin/true", NULL}, *envp[] = {NULL};
    int64_t *ns = calloc((size_t)reps, sizeof(int64_t));
    if (bytes) {
        char *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (base == MAP_FAILED) return 2;
        madvise(base, bytes, MADV_NOHUGEPAGE);
        for (size_t off = 0; off < bytes; off += 4096) base[off] = 1;
    }
    for (int m = 0; m < 2; m++) {
        for (int i = -warmup; i < reps; i++) {
            int status;
            int64_t start = now_ns();
            pid_t pid = fork();
            if (pid == 0) {
                if (m == 1) execve("/bin/true", argv_child, envp);
                _exit(m == 1 ? 127 : 0);
            }
            if (pid < 0 || waitpid(pid, &status, 0) < 0 || status != 0) return 3;
            if (i >= 0) ns[i] = now_ns() - start;
        }
        qsort(ns, (size_t)reps, sizeof(int64_t), cmp);
        printf("%s %lld\n", m ? "fork_execve" : "fork_exit", (long long)ns[reps / 2]);
    }
    return 0;
}
"""


def peer_medians_us(binary: Path, sizes: list[int], reps: int) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {m: {} for m in METHODS}
    for mib in sizes:
        done = subprocess.run(
            [str(binary), str(mib), str(reps), "2"], capture_output=True, text=True, check=True
        )
        for line in done.stdout.splitlines():
            method, median_ns = line.split()
            out[method][mib] = int(median_ns) / 1e3
    return out


def ours(sizes: list[int], reps: int, var_dir: str) -> dict:
    env = {**os.environ, "SYSOPS_VAR_DIR": var_dir, "DJANGO_SETTINGS_MODULE": "playground.settings"}
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=REPO_ROOT, env=env, check=True)
    done = subprocess.run(
        [
            *manage,
            "run_experiment",
            "process-spawn",
            "--param",
            f"methods={','.join(METHODS)}",
            "--param",
            f"parent_sizes_mib={','.join(map(str, sizes))}",
            "--param",
            f"repetitions={reps}",
            "--param",
            "warmup=2",
            "--json",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"the experiment failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,64,256", help="parent sizes in MiB, commas")
    parser.add_argument("--reps", type=int, default=20, help="measured cycles per method, size")
    args = parser.parse_args(argv)
    sizes = sorted({int(s) for s in args.sizes.split(",")})
    if len(sizes) < 2:
        parser.error("give at least two sizes for a slope")

    with tempfile.TemporaryDirectory(prefix="sysops-bench-spawn-") as tmp:
        binary = build_peer(Path(tmp), PEER_SOURCE)
        # The peer runs before and after ours, and the two are averaged: drift in the host's
        # load between them then biases neither side.
        before = peer_medians_us(binary, sizes, args.reps)
        run = ours(sizes, args.reps, tmp)
        after = peer_medians_us(binary, sizes, args.reps)
    peer = {m: {mib: (before[m][mib] + after[m][mib]) / 2 for mib in sizes} for m in METHODS}
    rows = {row["metric"]: row for row in run["results"]}
    labels = {"fork_exit": "fork + _exit", "fork_execve": "fork + execve"}
    print(f"process-spawn (run #{run['run']}, sandboxed) against a plain C loop, {args.reps} reps")
    print(f"{'method':<14} {'MiB':>5} {'ours µs':>10} {'C µs':>10} {'ours/C':>7}")
    for method in METHODS:
        for mib in (sizes[0], sizes[-1]):
            mine = rows[f"{labels[method]} from a {mib} MiB parent: reaped"]["value"]
            theirs = peer[method][mib]
            print(f"{method:<14} {mib:>5} {mine:>10.1f} {theirs:>10.1f} {mine / theirs:>7.2f}")
    print(f"{'method':<14} {'ours µs/MiB':>12} {'C µs/MiB':>10} {'ours/C':>7}")
    for method in METHODS:
        mine = rows[f"{labels[method]}: cost per MiB of parent"]["value"]
        theirs = fit_line(sizes, [peer[method][mib] for mib in sizes]).slope
        print(f"{method:<14} {mine:>12.2f} {theirs:>10.2f} {mine / theirs:>7.2f}")
    print(f"C medians by size, before and after ours: {json.dumps([before, after])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
