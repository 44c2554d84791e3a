"""Capture the golden strace fixtures in tests/tracing/fixtures/ and write their expected events.

    .venv/bin/python tests/tracing/capture_fixtures.py            # capture all, then goldens
    .venv/bin/python tests/tracing/capture_fixtures.py --golden   # goldens from existing .strace

Each ``NAME.strace`` is real strace 6.1 output of a small program in fixtures/, run by the
system Python with ``-S -I`` (no site, no environment: a short, stable start-up):

- workload:       ``strace -f -ttt -T -yy -s 64 -o F python3 workload.py DIR``
- sandboxed:      the same workload inside bubblewrap, as the runner will trace it
- killed:         ``-o F`` on killed.py (a child SIGKILLed inside read(2))
- strace_killed:  ``-o F`` on sleeper.py, then strace itself SIGKILLed: the file ends mid-line
- attach:         ``strace -f -ttt -T -yy -s 64 -p PID`` on ticker.py, output on stderr, then
                  SIGINT: attach/detach notes, ``[pid N]`` prefixes, ``<detached ...>``

``NAME.json`` holds the parser's events for ``NAME.strace``, one per line. Regenerating it is
a change of expected behaviour: read the diff before committing it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from sysops.tracing.parse import parse_text  # noqa: E402 - needs the path set above

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PYTHON = "/usr/bin/python3"
STRACE = ["strace", "-f", "-ttt", "-T", "-yy", "-s", "64"]
BWRAP = [
    "bwrap",
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--tmpfs",
    "/tmp",
    "--chdir",
    "/tmp",
]
WAIT_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.01
ATTACH_AFTER_S = 0.3
DETACH_AFTER_S = 0.3


def quiet_run(argv: list[str], cwd: str) -> None:
    subprocess.run(
        argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=WAIT_TIMEOUT_S,
    )


def capture_workload(out: Path, workdir: str) -> None:
    program = str(FIXTURES / "workload.py")
    quiet_run([*STRACE, "-o", str(out), PYTHON, "-S", "-I", program, workdir], cwd=workdir)


def capture_sandboxed(out: Path, workdir: str) -> None:
    program = str(FIXTURES / "workload.py")
    quiet_run([*STRACE, "-o", str(out), *BWRAP, PYTHON, "-S", "-I", program, "/tmp"], workdir)


def capture_killed(out: Path, workdir: str) -> None:
    quiet_run([*STRACE, "-o", str(out), PYTHON, "-S", "-I", str(FIXTURES / "killed.py")], workdir)


def capture_strace_killed(out: Path, workdir: str) -> None:
    strace = subprocess.Popen(
        [*STRACE, "-o", str(out), PYTHON, "-S", "-I", str(FIXTURES / "sleeper.py")],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )

    def asleep_after_marker() -> bool:
        text = out.read_text() if out.exists() else ""
        return "clock_nanosleep(" in text.partition("sysops-trace-begin")[2]

    # Kill strace once the tracee sleeps after the marker, so its last line stays half-written.
    wait_for(asleep_after_marker)
    strace.send_signal(signal.SIGKILL)
    strace.wait(timeout=WAIT_TIMEOUT_S)
    tracee_pid = int(out.read_text().split(maxsplit=1)[0])
    # The tracee outlives strace (6.1 has no kill-on-exit); let it finish its sleep.
    wait_for(lambda: not Path(f"/proc/{tracee_pid}").exists())


def capture_attach(out: Path, workdir: str) -> None:
    ticker = subprocess.Popen(
        [PYTHON, "-S", "-I", str(FIXTURES / "ticker.py")],
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    time.sleep(ATTACH_AFTER_S)
    with out.open("w") as stderr:
        strace = subprocess.Popen(
            [*STRACE, "-p", str(ticker.pid)],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        time.sleep(DETACH_AFTER_S)
        strace.send_signal(signal.SIGINT)
        strace.wait(timeout=WAIT_TIMEOUT_S)
    ticker.wait(timeout=WAIT_TIMEOUT_S)


def wait_for(condition) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("fixture capture: condition not met in time")
        time.sleep(POLL_INTERVAL_S)


def write_golden(name: str) -> int:
    events = parse_text((FIXTURES / f"{name}.strace").read_text())
    lines = [json.dumps(event.to_dict(), ensure_ascii=False) for event in events]
    (FIXTURES / f"{name}.json").write_text("[\n" + ",\n".join(lines) + "\n]\n")
    return len(events)


CAPTURES = {
    "workload": capture_workload,
    "sandboxed": capture_sandboxed,
    "killed": capture_killed,
    "strace_killed": capture_strace_killed,
    "attach": capture_attach,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--golden", action="store_true", help="only rewrite the .json files")
    parser.add_argument("names", nargs="*", help=f"some of: {' '.join(CAPTURES)} (default all)")
    options = parser.parse_args()
    unknown = set(options.names) - set(CAPTURES)
    if unknown:
        parser.error(f"unknown fixture(s): {', '.join(sorted(unknown))}")
    for name in options.names or CAPTURES:
        if not options.golden:
            with tempfile.TemporaryDirectory(prefix="sysops-fixture-") as workdir:
                os.chmod(workdir, 0o755)
                CAPTURES[name](FIXTURES / f"{name}.strace", workdir)
        print(f"{name}: {write_golden(name)} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
