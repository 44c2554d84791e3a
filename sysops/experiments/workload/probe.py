"""Test probe with syscalls known in advance, for the tracer's end-to-end tests.

``calls``: open, write, close, an anonymous private mmap, a connect to a closed loopback port,
and a forked child that makes calls of its own. ``getppid_loop``: ``count`` getppid calls.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
from typing import Any

from sysops.worker.emit import Emitter

CLOSED_PORT = 9  # nothing listens on the sandbox's own loopback
MAP_BYTES = 65536


def run(params: dict[str, Any], emit: Emitter) -> None:
    if params["case"] == "getppid_loop":
        getppid = os.getppid
        for _ in range(int(params["count"])):
            getppid()
        return
    fd = os.open("/tmp/workload.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"hello sysops\n")
    os.close(fd)
    region = mmap.mmap(
        -1,
        MAP_BYTES,
        flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS,
        prot=mmap.PROT_READ | mmap.PROT_WRITE,
    )
    region[0] = 1
    region.close()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        contextlib.suppress(ConnectionRefusedError),
    ):
        sock.connect(("127.0.0.1", CLOSED_PORT))
    pid = os.fork()
    if pid == 0:
        os.getppid()
        child_fd = os.open("/tmp/child.txt", os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(child_fd, b"child")
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    emit.result([{"metric": "child exit status", "value": os.waitstatus_to_exitcode(status)}])
