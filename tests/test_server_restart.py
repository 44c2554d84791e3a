"""The web server (daphne, as `make run` starts it) dies with SIGKILL during an embedded run: the
runner finishes the run and records everything; the next server starts its agent at once (no
visitor needed), which claims queued runs and adopts the running one, and a viewer that connects
again gets the whole run, live."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sysops.models import Run
from tests.helpers.runs import database_url, wait_for
from tests.helpers.websocket import WebSocket

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[1]
PORT = 16010  # this checkout's block
SAMPLES = 150
DURATION_S = 15.0  # long enough to outlive a server restart
STATUS = re.compile(r'id="run-status"[^>]*data-status="(\w+)"')


def serve(var_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SYSOPS_VAR_DIR": str(var_dir),
        "SYSOPS_TEST_EXPERIMENTS": "1",
    }
    log = open(var_dir / "server.log", "ab")  # noqa: SIM115 - the server's, closed with it
    return subprocess.Popen(
        [sys.executable, "manage.py", "serve", "-b", "127.0.0.1", "-p", str(PORT)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text()[:40]


def watch(run_id: int) -> tuple[set[int], int, str, str]:
    """A viewer of the run on the live server, until the run ends: the sample x values it got,
    how many live sample frames came after its snapshot, the status in its first snapshot and
    the final status."""
    deadline = time.monotonic() + 30
    while True:
        try:
            ws = WebSocket("127.0.0.1", PORT, f"/ws/runs/{run_id}/")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    xs: set[int] = set()
    live_frames, first_status, status = 0, "", ""
    try:
        while status not in Run.TERMINAL or len(xs) < SAMPLES:
            message = ws.receive()
            if message.startswith("{"):
                frame = json.loads(message)
                if frame.get("kind") in ("snapshot", "samples"):
                    xs.update(int(x) for _, x, _ in frame["samples"])
                    live_frames += frame["kind"] == "samples"
            elif match := STATUS.search(message):
                status = match[1]
                first_status = first_status or status
    finally:
        ws.close()
    return xs, live_frames, first_status, status


def test_a_run_outlives_a_killed_server_and_the_next_one_adopts_it(tmp_path):
    run = Run.objects.create(
        experiment="synthetic", params={"samples": SAMPLES, "duration_s": DURATION_S}
    )
    first = serve(tmp_path)
    try:
        run = wait_for(
            run, lambda r: r.runner_pid is not None and r.sample_chunks.exists(), timeout_s=90
        )
    finally:
        first.send_signal(signal.SIGKILL)  # the server's pid alone, as a crash would
        first.wait()
    runner_pid = run.runner_pid
    time.sleep(1)
    assert alive(runner_pid), "the runner died with the server"
    assert os.getpgid(runner_pid) != first.pid

    queued = Run.objects.create(experiment="synthetic", params={"samples": 3})
    second = serve(tmp_path)
    try:
        # Nobody has visited the new server: its agent started with it.
        queued = wait_for(queued, lambda r: r.is_terminal, timeout_s=90)
        xs, live_frames, first_status, status = watch(run.pk)
        run = wait_for(run, lambda r: r.is_terminal, timeout_s=60)
    finally:
        second.terminate()
        second.wait(timeout=30)

    assert queued.status == Run.Status.SUCCEEDED, queued.reason
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.reason == "completed"
    stored = [s for chunk in run.sample_chunks.all() for s in chunk.samples]
    assert sorted(x for _, x, _ in stored) == list(range(SAMPLES))
    assert run.logs.filter(message__contains="the web server stopped during the run").exists()
    # The viewer of the new server got every sample, and (joining while the run still ran) got
    # them live after its snapshot.
    assert status == Run.Status.SUCCEEDED
    assert xs == set(range(SAMPLES))
    if first_status == Run.Status.RUNNING:
        assert live_frames > 0
