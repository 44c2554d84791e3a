"""The Go program (``sysops/native/go``, built by the set-up into ``sysops/native/bin/sysgo``):
where it is, and its ``serve`` mode as a Python object.

``sysgo serve`` times syscall-cost's Go layers: one JSON request a line on its stdin, one JSON
reply a line on its stdout. A probe keeps one server for the whole run and asks it for one
repetition at a time, so the Go layers interleave with the Python and C layers exactly as those
interleave with each other. The Go program runs as a child of the worker inside the sandbox, so
a trace (strace -f) shows its threads and calls under their own pids.

Sandbox side: standard library only.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from sysops.worker.toolkit.harness import EOF, read_json_line, write_json_line

BINARY_PATH = Path(__file__).resolve().parent / "bin" / "sysgo"
BUILD_COMMAND = "bash scripts/setup.sh run (it builds sysops/native/go)"
LAYERS = ("cgo", "go_syscall", "go_raw")
# One repetition of the slowest layer: 1e6 calls at ~1 µs each, with a wide margin.
REPLY_TIMEOUT_S = 60.0


def binary() -> Path:
    """The built Go program; FileNotFoundError naming the build step when it is missing."""
    if not os.access(BINARY_PATH, os.X_OK):
        raise FileNotFoundError(
            f"the Go program {BINARY_PATH} is missing or not executable; build it with "
            f"{BUILD_COMMAND}"
        )
    return BINARY_PATH


def go_env(gomaxprocs: int = 1, godebug: str = "") -> dict[str, str]:
    """The whole environment of a Go child: the sandbox's is cleared, and nothing else from the
    worker's should leak in (GOGC, GODEBUG set by someone else would change the figures)."""
    env = {"GOMAXPROCS": str(gomaxprocs)}
    if godebug:
        env["GODEBUG"] = godebug
    return env


class GoServer:
    """``sysgo serve`` as a child process: ``loop_ns(layer, call, iterations, fd)`` is one timed
    loop in Go. Use as a context manager; closing its stdin ends it."""

    def __init__(self, *, gomaxprocs: int = 1, pass_fds: tuple[int, ...] = ()) -> None:
        self.gomaxprocs = gomaxprocs
        self._process = subprocess.Popen(
            [str(binary()), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=go_env(gomaxprocs),
            pass_fds=pass_fds,
        )

    def loop_ns(self, layer: str, call: str, iterations: int, fd: int = -1) -> int:
        assert self._process.stdin is not None and self._process.stdout is not None
        request: Mapping[str, Any] = {
            "layer": layer,
            "call": call,
            "iterations": iterations,
            "fd": fd,
        }
        write_json_line(self._process.stdin.fileno(), request)
        answer = read_json_line(self._process.stdout.fileno(), REPLY_TIMEOUT_S)
        if answer is None or answer is EOF:
            status = self._process.poll()
            raise RuntimeError(
                f"the Go program gave no answer for {layer} {call}"
                + (f" (it exited with status {status})" if status is not None else "")
            )
        if "error" in answer:
            raise OSError(f"Go layer {layer}: {answer['error']}")
        return int(answer["elapsed_ns"])

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> GoServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def go_version() -> str | None:
    """The Go release the program was built with, from its build info (``go version`` is not
    in the sandbox): the first line ``sysgo version`` prints."""
    try:
        out = subprocess.run(
            [str(binary()), "version"], capture_output=True, text=True, timeout=10, env={}
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None
