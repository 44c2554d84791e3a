"""Where the golden strace captures live and how to read them (see capture_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Every capture, and the ones written with -o (pid-prefixed, as the runner will read them).
ALL_CAPTURES = ("workload", "sandboxed", "killed", "strace_killed", "attach")
OUTPUT_FILE_CAPTURES = ("workload", "sandboxed", "killed", "strace_killed")


def strace_text(name: str) -> str:
    return (FIXTURES / f"{name}.strace").read_text()


def expected_events(name: str) -> list[dict[str, Any]]:
    return json.loads((FIXTURES / f"{name}.json").read_text())
