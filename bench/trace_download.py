"""Trace downloads of a big stored trace: time and bytes per format, uncompressed and gzip.

Stores ``--events`` events (a known workload's strace lines, parsed by the real parser and
stored by the real recorder, as tests/helpers/stored_trace.py does), serves them with daphne and
downloads each format over loopback twice: without Accept-Encoding, then with ``gzip``. Checks
that the gzip body decodes to the same bytes, and prints the size the page announced before the
click. Run from the repository root:

    .venv/bin/python bench/trace_download.py [--events 780000] [--port 15810]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import urllib.request
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import app_server, stored_trace_run  # noqa: E402

FORMATS = ("strace", "ndjson", "perfetto")
READ_BYTES = 256 * 1024


def fetch(url: str, *, gzip: bool) -> tuple[float, int, str, str]:
    """Seconds to the last byte, bytes on the wire, Content-Encoding, sha256 of the content."""
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    digest = hashlib.sha256()
    wire = 0
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as response:
        encoding = response.headers.get("Content-Encoding") or ""
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
        while block := response.read(READ_BYTES):
            wire += len(block)
            digest.update(decoder.decompress(block) if decoder else block)
    elapsed_s = time.perf_counter() - started
    if decoder:
        digest.update(decoder.flush())
    return elapsed_s, wire, encoding, digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=780_000)
    parser.add_argument("--port", type=int, default=None, help="the app server's port")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="sysops-bench-") as var_dir:
        run = stored_trace_run(var_dir, args.events)
        run_id, announced = run.pk, run.trace.get("download_bytes") or {}
        with app_server(args.port, var_dir=var_dir) as base:
            print(
                f"{'format':<9} {'plain MB':>9} {'plain s':>8} {'gzip MB':>8} {'gzip s':>7}"
                f" {'ratio':>6}  {'announced':>9}  same content"
            )
            for fmt in FORMATS:
                url = f"{base}/runs/{run_id}/trace/{fmt}/"
                plain_s, plain_bytes, _, plain_sum = fetch(url, gzip=False)
                gzip_s, gzip_bytes, encoding, gzip_sum = fetch(url, gzip=True)
                same = encoding == "gzip" and gzip_sum == plain_sum
                ok &= gzip_sum == plain_sum
                guess = announced.get(fmt)
                guess_text = f"{guess / 1e6:8.1f}M" if guess else "      n/a"
                print(
                    f"{fmt:<9} {plain_bytes / 1e6:9.1f} {plain_s:8.1f} {gzip_bytes / 1e6:8.1f}"
                    f" {gzip_s:7.1f} {plain_bytes / gzip_bytes:6.1f}  {guess_text}"
                    f"  {same} (Content-Encoding: {encoding or 'none'})"
                )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
