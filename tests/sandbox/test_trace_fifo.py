"""strace's output FIFO during a real traced sandbox: its path is public (strace's command line),
so only the sandbox uid that strace runs as may open it. A local user writing fake syscall lines
into it gets EACCES, and the trace holds none of them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from sysops import sandbox
from sysops.agent.tracer import TraceCapture
from sysops.sandbox import uids

pytestmark = pytest.mark.skipif(not uids.caller_is_root(), reason="needs a second uid")
FORGED = '1700000000.000000 execve("/forged", ["forged"], 0x0 /* 0 vars */) = 0 <0.000001>'
# Another local user: opens the path it read from the tracer's command line, without blocking.
WRITER = """
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
    os.write(fd, (sys.argv[2] + "\\n").encode())
    print("ok")
except OSError as exc:
    print(errno.errorcode[exc.errno])
"""


def fifo_path_of(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    return argv[argv.index(b"-o") + 1].decode()


def write_as(uid: int, path: str) -> str:
    done = subprocess.run(
        ["/usr/bin/python3", "-S", "-c", WRITER, path, FORGED],
        user=uid,
        group=uid,
        extra_groups=[],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.stdout.strip() or done.stderr


def test_another_uid_cannot_write_into_a_running_trace(can_sandbox, policy, public_dir):
    with uids.lease_uid() as sandbox_uid, uids.lease_uid() as other:
        capture = TraceCapture(public_dir, owner_uid=sandbox_uid.uid)
        try:
            proc = sandbox.start(
                policy,
                sandbox.worker_command(policy),
                pass_fds=(),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                wrapper=capture.wrapper(),
            )
            try:
                assert proc.stdin is not None
                job = {"probe": "sysops.experiments.hostile.probe", "events_fd": 2}
                job["params"] = {"case": "sleep", "sleep_s": 1}
                proc.stdin.write(json.dumps(job).encode())
                proc.stdin.close()
                path = fifo_path_of(proc.pid)

                assert write_as(other.uid, path) == "EACCES"
                assert Path(path).stat().st_mode & 0o777 == 0o600
                assert Path(path).parent.stat().st_mode & 0o777 == 0o700
                proc.wait_until_deadline()
            finally:
                proc.kill()
                proc.cleanup()
            events = capture.finish()
        finally:
            capture.close()
    assert not any("forged" in str(event.to_dict()) for event in events)
