"""mmap fidelity: the experiment's first-touch ns per page, measured in the sandbox, against a
plain C program doing the same outside it.

Both map 64 MiB anonymous MAP_PRIVATE, advise MADV_NOHUGEPAGE (THP off: 4 KiB faults, whatever
the host's default; the host lets any process choose this), write one byte per page in address
order, and time the pass; the peer is a dozen lines of C compiled here with `cc -O2`, run as a
plain process. Rounds alternate between the two so that drift hits both alike. Prints each
side's median ns per page and the ratio (goal: about 1; the sandbox's seccomp filter costs
nothing per fault, only per syscall). Run from the repository root:

    SYSOPS_SANDBOX_UID_BASE=... .venv/bin/python bench/mmap_fidelity.py [--rounds 3] [--reps 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from _sandboxed import series_values  # noqa: E402 - the script's own directory is on the path

SIZE_MIB = 64
PEER_TIMEOUT_S = 300
PEER_SOURCE = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
    size_t size = (size_t)atol(argv[1]) << 20;
    int reps = atoi(argv[2]), warmup = 1;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = size / page;
    for (int rep = 0; rep < warmup + reps; rep++) {
        volatile char *map = mmap(NULL, size, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (map == MAP_FAILED || madvise((void *)map, size, MADV_NOHUGEPAGE) != 0) return 1;
        long long start = now_ns();
        for (size_t i = 0; i < pages; i++) map[i * page] = 0x5A;
        long long elapsed = now_ns() - start;
        munmap((void *)map, size);
        if (rep >= warmup) printf("%.2f\n", (double)elapsed / pages);
    }
    return 0;
}
"""


def build_peer(directory: Path) -> Path:
    source, binary = directory / "touch.c", directory / "touch"
    source.write_text(PEER_SOURCE)
    subprocess.run(["cc", "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def peer_ns_per_page(binary: Path, reps: int) -> list[float]:
    completed = subprocess.run(
        [str(binary), str(SIZE_MIB), str(reps)],
        capture_output=True,
        text=True,
        timeout=PEER_TIMEOUT_S,
        check=True,
    )
    return [float(line) for line in completed.stdout.split()]


def sandboxed_ns_per_page(reps: int) -> list[float]:
    params = {
        "kind": "anonymous",
        "sharing": ["private"],
        "size_kib": SIZE_MIB * 1024,
        "pattern": "page",
        "access": "write",
        "populate": ["none"],
        "thp": ["nohugepage"],
        "layers": ["native"],
        "repetitions": reps,
        "warmup": 1,
    }
    return series_values("mmap", params, "native-private-none-nohugepage")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two sides")
    parser.add_argument("--reps", type=int, default=10, help="repetitions per side per round")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)
    from sysops.native import build

    build.build()

    ours: list[float] = []
    peer: list[float] = []
    with tempfile.TemporaryDirectory(prefix="mmap-bench-") as directory:
        binary = build_peer(Path(directory))
        for _ in range(args.rounds):
            peer.extend(peer_ns_per_page(binary, args.reps))
            ours.extend(sandboxed_ns_per_page(args.reps))

    ours_median, peer_median = statistics.median(ours), statistics.median(peer)
    print(f"{SIZE_MIB} MiB anonymous MAP_PRIVATE, MADV_NOHUGEPAGE, one write per page")
    print(f"plain C loop, outside the sandbox: median {peer_median:.1f} ns/page (n={len(peer)})")
    print(
        f"mmap experiment, C layer in the sandbox: median {ours_median:.1f} ns/page (n={len(ours)})"
    )
    print(f"ratio experiment / plain C: {ours_median / peer_median:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
