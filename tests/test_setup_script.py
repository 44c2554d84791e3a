"""Every set-up target leaves a working install: `make setup-test` included, so that
run_experiment works right after it."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_it_leaves_a_migrated_database(tmp_path):
    env = {**os.environ, "SYSOPS_VAR_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    subprocess.run(["bash", "scripts/setup.sh", "test"], cwd=REPO, env=env, check=True)

    check = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"], cwd=REPO, env=env, capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert (tmp_path / "db.sqlite3").exists()
