"""Run a probe directly, outside the sandbox, against a real Emitter on a pipe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from sysops.worker.emit import Emitter

READER_JOIN_TIMEOUT_S = 10.0
REPO_ROOT = Path(__file__).resolve().parents[2]
# A probe's module and parameters in argv, its events on the descriptor named third.
_IN_ITS_OWN_PROCESS = """
import importlib, json, sys
from sysops.worker.emit import Emitter
importlib.import_module(sys.argv[1]).run(json.loads(sys.argv[2]), Emitter(int(sys.argv[3])))
"""

Probe = Callable[[Mapping[str, Any], Emitter], None]


class Events(list[dict[str, Any]]):
    """The decoded events of one probe run, in order."""

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [event for event in self if event["type"] == type_]

    def samples(self, series: str) -> list[dict[str, Any]]:
        return [event for event in self.of("sample") if event["series"] == series]

    def rows(self) -> dict[str, dict[str, Any]]:
        """The result rows by metric name (there is exactly one result event)."""
        (result,) = self.of("result")
        return {row["metric"]: row for row in result["rows"]}


def run_probe(probe: Probe, params: Mapping[str, Any]) -> Events:
    """Run ``probe`` with an Emitter writing to a pipe, read by a thread as the runner would
    (so a probe that emits a lot never blocks on a full pipe), and decode every line."""
    read_fd, write_fd = os.pipe()
    chunks: list[bytes] = []

    def read_all() -> None:
        while chunk := os.read(read_fd, 65_536):
            chunks.append(chunk)

    reader = threading.Thread(target=read_all, daemon=True)
    reader.start()
    try:
        probe(params, Emitter(write_fd))
    finally:
        os.close(write_fd)
        reader.join(READER_JOIN_TIMEOUT_S)
        os.close(read_fd)
    return Events(json.loads(line) for line in b"".join(chunks).splitlines())


def run_probe_alone(probe: ModuleType, params: Mapping[str, Any]) -> Events:
    """``probe.run`` as run_probe runs it, but in a process of its own that holds only its own
    descriptors, as a worker does: probes that count, exhaust or number descriptors (a limit
    of 64, select's 1024) must not see the dozens this test process holds."""
    read_fd, write_fd = os.pipe()
    with tempfile.TemporaryFile() as stderr:  # (a pipe could fill while the events are read)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _IN_ITS_OWN_PROCESS, probe.__name__, json.dumps(params)]
                + [str(write_fd)],
                cwd=REPO_ROOT,
                pass_fds=(write_fd,),
                stderr=stderr,
            )
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as events:
            data = events.read()
        proc.wait()
        stderr.seek(0)
        assert proc.returncode == 0, stderr.read().decode(errors="replace")
    return Events(json.loads(line) for line in data.splitlines())
