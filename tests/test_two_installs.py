"""Two installs on one host (two agents, two databases whose run ids both start at 1) run at
the same time, and no two runs ever share a sandbox uid: each run leases its own."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sysops.sandbox import cached_host_report, uids

REPO_DIR = Path(__file__).resolve().parents[1]
RUNS_PER_INSTALL = 2
FINISH_TIMEOUT_S = 120.0
# Long enough that the two installs' runs overlap however slowly the runners start.
SLEEP_S = 4

pytestmark = pytest.mark.skipif(not uids.caller_is_root(), reason="only root leases uids")


def manage(database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{database}"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=FINISH_TIMEOUT_S,
        check=True,
    )


def create_runs(database: Path) -> None:
    params = {"case": "sleep", "sleep_s": SLEEP_S, "path": "", "wall_s": 30, "cpu_s": 5}
    code = (
        "from sysops.models import Run\n"
        f"for _ in range({RUNS_PER_INSTALL}):\n"
        f"    Run.objects.create(experiment='hostile', params={json.dumps(params)})\n"
    )
    manage(database, "shell", "-c", code)


def runs_of(database: Path) -> list[tuple[int, str, str, int | None]]:
    with sqlite3.connect(database, timeout=20) as db:
        return db.execute("SELECT id, status, reason, sandbox_uid FROM sysops_run").fetchall()


def test_two_installs_never_share_a_sandbox_uid(tmp_path):
    if not cached_host_report().can_sandbox:
        pytest.skip(f"this host cannot sandbox: {cached_host_report().reason}")
    databases = [tmp_path / "one.sqlite3", tmp_path / "two.sqlite3"]
    for database in databases:
        manage(database, "migrate", "--no-input")
        create_runs(database)
    agents = [
        subprocess.Popen(
            [sys.executable, "manage.py", "sysops_worker", "--max-running", str(RUNS_PER_INSTALL)],
            cwd=REPO_DIR,
            env={**os.environ, "DATABASE_URL": f"sqlite:///{database}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for database in databases
    ]
    try:
        deadline = time.monotonic() + FINISH_TIMEOUT_S
        while time.monotonic() < deadline:
            runs = [run for database in databases for run in runs_of(database)]
            if all(status not in ("queued", "running") for _, status, _, _ in runs):
                break
            time.sleep(0.5)
    finally:
        for agent in agents:
            agent.terminate()
        for agent in agents:
            agent.wait(timeout=30)

    # Both databases numbered their runs 1 and 2, as two installs would.
    assert [run[0] for run in runs] == [1, 2, 1, 2]
    assert [(status, reason) for _, status, reason, _ in runs] == [("succeeded", "completed")] * 4
    recorded = [uid for *_, uid in runs]
    assert None not in recorded
    assert len(set(recorded)) == len(recorded), f"runs shared a uid: {recorded}"
    assert set(recorded) <= set(uids.configured_range())
    for uid in recorded:
        assert uids.processes_of_uid(uid) == {}
