"""The runner owns one run from claim to final status, in its own process.

It builds the sandbox, starts the worker inside it, reads the worker's events and stderr,
persists them in batches and hands each committed batch to ``publish``. Run as
``python -m sysops.agent.runner_process <run_id>``, it writes batches as JSON lines to stdout, where
the agent that started it picks them up and publishes them to the channel layer.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings

from sysops import sandbox
from sysops.agent.events import BadLine, LineSplitter, parse_line
from sysops.agent.recorder import Publish, RunRecorder
from sysops.experiments import registry
from sysops.models import Run, RunLog

STDERR_CAP_BYTES = 64 << 10
READ_CHUNK_BYTES = 64 << 10


class _Stop(Exception):
    """The run must end now: (status, reason)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def build_policy(run: Run, params: dict[str, Any], code_dir: Path) -> sandbox.Policy:
    experiment = registry.get(run.experiment)
    assert experiment is not None
    policy = sandbox.Policy(code_dir=code_dir, wall_s=experiment.wall_s(params))
    return replace(policy, **experiment.limits(params))


def execute(run_id: int, publish: Publish) -> Run:
    """Run ``run_id`` (already claimed: status running) to a terminal state and return it."""
    run = Run.objects.get(pk=run_id)
    recorder = RunRecorder(run, publish)
    try:
        _execute(run, recorder)
    except _Stop as stop:
        return recorder.finish(stop.status, stop.reason)
    except Exception as exc:  # noqa: BLE001 - the run must end with a reason, whatever broke
        recorder.log(f"runner error: {type(exc).__name__}: {exc}", level="error", source="runner")
        return recorder.finish(Run.Status.FAILED, f"runner error: {type(exc).__name__}: {exc}")
    raise AssertionError("_execute always ends with _Stop")


def _execute(run: Run, recorder: RunRecorder) -> None:
    experiment = registry.get(run.experiment)
    if experiment is None:
        raise _Stop(Run.Status.FAILED, f"unknown experiment {run.experiment!r}")
    params, _, form = experiment.clean_params(experiment.form_data(run.params, run.trace_mode))
    if params is None:
        raise _Stop(Run.Status.FAILED, f"invalid parameters: {form.errors.as_text()}")

    report = sandbox.cached_host_report()
    unsandboxed = not report.can_sandbox and settings.SYSOPS_ALLOW_UNSANDBOXED
    if not report.can_sandbox and not unsandboxed:
        raise _Stop(Run.Status.FAILED, f"sandbox refused: {report.reason}")
    if unsandboxed:
        run.unsandboxed = True
        run.save(update_fields=["unsandboxed"])
        recorder.log(
            f"UNSANDBOXED: {report.reason}; running with rlimits only because "
            "SYSOPS_ALLOW_UNSANDBOXED is set",
            level=RunLog.Level.WARNING,
            source="runner",
        )

    code_dir = Path(tempfile.mkdtemp(prefix=f"sysops-run-{run.pk}-", dir=settings.SYSOPS_RUN_DIR))
    try:
        os.chmod(code_dir, 0o755)
        sandbox.stage_code(code_dir)
        policy = replace(build_policy(run, params, code_dir), unsandboxed=unsandboxed)
        _supervise(run, recorder, policy, experiment.probe, params)
    finally:
        shutil.rmtree(code_dir, ignore_errors=True)


def _supervise(
    run: Run, recorder: RunRecorder, policy: sandbox.Policy, probe: str, params: dict[str, Any]
) -> None:
    events_r, events_w = os.pipe()
    try:
        proc = sandbox.start(
            policy,
            sandbox.worker_command(policy),
            pass_fds=(events_w,),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            run_id=run.pk,
        )
    except sandbox.SandboxRefused as exc:
        os.close(events_r)
        raise _Stop(Run.Status.FAILED, f"sandbox refused: {exc}") from exc
    finally:
        os.close(events_w)
    recorder.log(f"sandbox started (pid {proc.pid})", source="runner")
    try:
        job = {"probe": probe, "params": params, "events_fd": events_w}
        assert proc.stdin is not None and proc.stderr is not None
        try:
            proc.stdin.write(json.dumps(job).encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        stop = _pump(recorder, proc, events_r, proc.stderr.fileno(), policy)
        if stop is not None:
            proc.kill()
        proc.wait()
        outcome = proc.outcome()
    finally:
        os.close(events_r)
        proc.kill()
        proc.cleanup()
    raise stop or _verdict(recorder, outcome)


def _pump(
    recorder: RunRecorder,
    proc: sandbox.SandboxProcess,
    events_fd: int,
    stderr_fd: int,
    policy: sandbox.Policy,
) -> _Stop | None:
    """Read events and stderr until both close; returns why the run must stop early, if so."""
    deadline = time.monotonic() + policy.wall_s
    output_cap = settings.SYSOPS_OUTPUT_CAP_BYTES
    total_bytes = 0
    stderr_bytes = 0
    events, stderr = LineSplitter(), LineSplitter()
    sel = selectors.DefaultSelector()
    sel.register(events_fd, selectors.EVENT_READ, events)
    sel.register(stderr_fd, selectors.EVENT_READ, stderr)
    open_fds = 2
    while open_fds:
        timeout = max(0.0, min(0.1, deadline - time.monotonic()))
        for key, _ in sel.select(timeout):
            data = os.read(key.fd, READ_CHUNK_BYTES)
            splitter: LineSplitter = key.data
            if not data:
                sel.unregister(key.fd)
                open_fds -= 1
                lines = splitter.close()
            else:
                total_bytes += len(data)
                lines = splitter.feed(data)
            for line in lines:
                if splitter is events:
                    _on_event_line(recorder, line)
                elif stderr_bytes < STDERR_CAP_BYTES:
                    stderr_bytes += len(line)
                    recorder.log(line.decode("utf-8", "replace"), level="warning", source="stderr")
        if total_bytes > output_cap:
            return _Stop(Run.Status.FAILED, f"output cap of {output_cap} bytes exceeded")
        if time.monotonic() >= deadline:
            return _Stop(Run.Status.TIMED_OUT, f"wall-clock limit of {policy.wall_s:g} s reached")
        if recorder.due() and recorder.flush():
            return _Stop(Run.Status.CANCELLED, "cancelled by the user")
    return None


def _on_event_line(recorder: RunRecorder, line: bytes) -> None:
    event = parse_line(line)
    if isinstance(event, BadLine):
        recorder.log(f"{event.reason}: {event.excerpt}", level="error", source="runner")
    else:
        recorder.on_event(event)


def _verdict(recorder: RunRecorder, outcome: sandbox.Outcome) -> _Stop:
    if recorder.error_messages:
        return _Stop(Run.Status.FAILED, f"{recorder.error_messages[-1]} ({outcome.describe()})")
    if outcome.exit_code == 0 and outcome.signal is None and not outcome.limits_hit:
        if recorder.done:
            return _Stop(Run.Status.SUCCEEDED, "completed")
        return _Stop(Run.Status.FAILED, "worker exited without reporting done")
    return _Stop(Run.Status.FAILED, outcome.describe())


def serve(run_id: int) -> None:
    """The body of a runner process (``python -m sysops.agent.runner_process <run_id>``)."""
    # Batches go to the agent on the original stdout; anything else printed goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sandbox.set_child_subreaper()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    def publish(group: str, message: dict[str, Any]) -> None:
        out.write(json.dumps({"group": group, "message": message}) + "\n")

    execute(run_id, publish)


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # Unwinds through the sandbox's cleanup; execute() records the reason.
    raise _Stop(Run.Status.FAILED, "runner stopped by SIGTERM (agent shutting down)")
