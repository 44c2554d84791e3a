"""The runner owns one run from claim to final status, in its own process.

It builds the sandbox, starts the worker inside it, reads the worker's events and stderr,
persists them in batches and hands each committed batch to ``publish``. Run as
``python -m sysops.agent.runner_process <run_id>``, it writes batches as JSON lines to stdout, where
the agent that started it picks them up and publishes them to the channel layer.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import resource
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django.conf import settings

from sysops import sandbox
from sysops.agent import rundirs, scratch, warm
from sysops.agent.events import BadLine, LineSplitter, parse_line
from sysops.agent.link import AgentLink
from sysops.agent.recorder import MAX_RESULT_ROWS, Publish, RunRecorder
from sysops.agent.tracer import TraceCapture, keep_off_cpu
from sysops.dbretry import retry_db
from sysops.experiments import limits, registry
from sysops.experiments.base import Chart
from sysops.models import Run, RunLog
from sysops.tracing import cost as trace_cost
from sysops.tracing import scope
from sysops.tracing.parse import TraceEvent
from sysops.tracing.render import call_text
from sysops.worker.toolkit.faults import FAULT_PARAM

log = logging.getLogger(__name__)
STDERR_CAP_BYTES = 64 << 10
# See frozen_heap: the youngest generation is collected once per this many new objects.
GC_YOUNG_THRESHOLD = 50_000
# The pass whose events are the run's figures; other passes (the untraced reference, the traced
# pass) contribute only their progress, logs and errors, under their label.
MEASURED_PASS = "measured pass"
# The pass under an injected fault: its result rows (what each layer saw) are the run's too.
FAULT_PASS = "fault pass"
FAULT_LINES_LOGGED = 20
BAD_LINES_LOGGED = 100
READ_CHUNK_BYTES = 64 << 10


class _RunEnds(Exception):
    """The run ends now, whichever way, success included: (status, reason)."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def _save(run: Run, field: str) -> None:
    """One field of the run, stored even while another process holds the database's lock."""
    retry_db(lambda: run.save(update_fields=[field]), what=f"run {run.pk}: storing {field}")


def build_policy(run: Run, params: dict[str, Any], code_dir: Path) -> sandbox.Policy:
    experiment = registry.get(run.experiment)
    assert experiment is not None
    policy = sandbox.Policy(
        code_dir=code_dir,
        cpus=settings.SYSOPS_RUN_CPUS,
        allow_unbounded=settings.SYSOPS_ALLOW_UNBOUNDED,
    )
    # What the experiment asks for, within the operator's ceilings (sysops.experiments.limits).
    return replace(
        policy, **limits.bounded({"wall_s": experiment.wall_s(params), **experiment.limits(params)})
    )


def execute(
    run_id: int,
    publish: Publish,
    *,
    ready_ns: int | None = None,
    prepared: warm.Prepared | None = None,
    link: AgentLink | None = None,
) -> Run:
    """Run ``run_id`` (already claimed: status running) to a terminal state and return it;
    ``ready_ns``: when this runner was ready for it; ``prepared``: what a spare runner made
    ready before it knew the run (the run takes it over, and removes it)."""
    run = Run.objects.get(pk=run_id)
    recorder = RunRecorder(run, publish)
    if link is not None:
        link.note = lambda message: recorder.log(message, source="runner")
    recorder.stage("runner_ready", ready_ns)
    try:
        _execute(run, recorder, prepared)
    except _RunEnds as stop:
        if stop.status != Run.Status.SUCCEEDED:
            recorder.keep_partial(_charts(run))
        return recorder.finish(stop.status, stop.reason)
    except Exception as exc:  # noqa: BLE001 - the run must end with a reason, whatever broke
        log.exception("run %s: runner error", run_id)
        recorder.log(f"runner error: {type(exc).__name__}: {exc}", level="error", source="runner")
        return recorder.finish(
            Run.Status.FAILED,
            "the runner stopped on an internal error; its log says which (the figures so far "
            "are kept)",
        )
    finally:
        if prepared is not None:
            prepared.discard()
    raise AssertionError("_execute always ends with _RunEnds")


@contextlib.contextmanager
def frozen_heap(*, thaw: bool = True) -> Iterator[None]:
    """Around a run: what the process has loaded (Django, the experiments, the templates) leaves
    the cyclic collector's care, and the youngest generation is collected every
    GC_YOUNG_THRESHOLD allocations instead of 700. Afterwards the collector is as it was, unless
    ``thaw`` is false (a runner process, which exits after its run: thawing would make its last
    collection walk the heap its fork server froze, page by page).

    A traced run makes objects by the hundred thousand (events, their stored records), which
    live until the next flush: each collection of the oldest generation walked the whole heap,
    and the younger ones walked the pending events again and again."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *threshold[1:])
    try:
        yield
    finally:
        if thaw:
            gc.set_threshold(*threshold)
            gc.unfreeze()


def _charts(run: Run) -> list[Chart]:
    experiment = registry.get(run.experiment)
    try:
        return experiment.charts(run.params) if experiment else []
    except (KeyError, TypeError, ValueError):  # parameters the form would have refused
        return []


def _execute(run: Run, recorder: RunRecorder, prepared: warm.Prepared | None) -> None:
    experiment = registry.get(run.experiment)
    if experiment is None:
        raise _RunEnds(Run.Status.FAILED, f"unknown experiment {run.experiment!r}")
    checked, _, form = experiment.clean_params(experiment.form_data(run.params, run.trace_mode))
    if checked is None:
        raise _RunEnds(Run.Status.FAILED, f"invalid parameters: {form.errors.as_text()}")
    params, trace_set, fault = experiment.split_trace_options(checked)

    report = sandbox.cached_host_report()
    unsandboxed = not report.can_sandbox and settings.SYSOPS_ALLOW_UNSANDBOXED
    if not report.can_sandbox and not unsandboxed:
        raise _RunEnds(Run.Status.FAILED, f"sandbox refused: {report.reason}")
    if unsandboxed:
        run.unsandboxed = True
        _save(run, "unsandboxed")
        recorder.log(
            f"UNSANDBOXED: {report.reason}; running with rlimits only because "
            "SYSOPS_ALLOW_UNSANDBOXED is set",
            level=RunLog.Level.WARNING,
            source="runner",
        )

    _check_bounds(run, recorder, report)
    if prepared is not None:
        lease, work_dir = prepared.lease, prepared.work_dir
        _record_uid(recorder, lease)
    else:
        lease = _lease_uid(recorder)
        work_dir = rundirs.make(settings.SYSOPS_RUN_DIR, run.pk)
    run_scratch: scratch.Scratch | None = None
    try:
        code_dir = work_dir / "code"
        if prepared is None:
            code_dir.mkdir(mode=0o755)
            sandbox.stage_code(code_dir)
        policy = replace(
            build_policy(run, params, code_dir), unsandboxed=unsandboxed, sandbox_uid=lease.uid
        )
        run_scratch = _make_scratch(run, experiment.scratch_bytes(params), work_dir, policy)
        if run_scratch is not None:
            policy = replace(policy, scratch_dir=run_scratch.mount_point)
            recorder.log(run_scratch.describe(), source="runner")
        passes = _Passes(run, recorder, policy, experiment.probe, work_dir, experiment.rate_metric)
        passes.trace_set = trace_set
        if prepared is not None:
            passes.warm = prepared.take_warm(policy)
        traced = run.trace_mode != Run.TraceMode.OFF
        measured = passes.run(params, label=MEASURED_PASS, progress=(0.0, 0.7 if traced else 1.0))
        verdict = measured.stop or _verdict(measured)
        recorder.measured_complete = verdict.status == Run.Status.SUCCEEDED
        if verdict.status == Run.Status.SUCCEEDED and traced:
            expected = getattr(form, "expected_calls", None)
            _trace(passes, report, experiment.sampled_params(params), params, measured, expected)
        if verdict.status == Run.Status.SUCCEEDED and fault is not None:
            _fault_pass(passes, report, experiment.sampled_params(params), fault)
        if verdict.status == Run.Status.SUCCEEDED and (traced or fault is not None):
            # The run's last progress line is the measured pass's, whatever ran after it.
            progress = {"value": recorder.run.progress, "message": passes.measured_message}
            recorder.on_event({"type": "progress", **progress})
        raise verdict
    finally:
        # Before the work dir goes: the scratch filesystem is mounted inside it.
        for problem in scratch.remove(run_scratch) if run_scratch is not None else []:
            recorder.log(f"scratch clean-up: {problem}", level="error", source="runner")
        shutil.rmtree(work_dir, ignore_errors=True)
        lease.release()


def _check_bounds(run: Run, recorder: RunRecorder, report: sandbox.HostReport) -> None:
    """Refuse a run the host cannot give a memory, pids and cpu cgroup, unless the development
    switch allows it; then the run is marked UNBOUNDED."""
    check = report.check("cgroups")
    if check is None or check.ok:
        return
    if not settings.SYSOPS_ALLOW_UNBOUNDED:
        raise _RunEnds(Run.Status.FAILED, f"sandbox refused: {sandbox.NO_BOUND}: {check.detail}")
    _mark_unbounded(run, recorder, check.detail)


def _mark_unbounded(run: Run, recorder: RunRecorder, why: str) -> None:
    if run.unbounded:
        return
    run.unbounded = True
    _save(run, "unbounded")
    recorder.log(
        f"UNBOUNDED: {why}; running without memory, pids and cpu cgroup limits because "
        "SYSOPS_ALLOW_UNBOUNDED is set",
        level=RunLog.Level.WARNING,
        source="runner",
    )


def _lease_uid(recorder: RunRecorder) -> sandbox.UidLease:
    """The host uid every pass of this run uses, held until the run ends, and recorded so that
    anyone can tell which processes are the run's."""
    try:
        lease = sandbox.lease_uid()
    except sandbox.UidUnavailable as exc:
        raise _RunEnds(Run.Status.FAILED, f"sandbox refused: no sandbox uid: {exc}") from exc
    _record_uid(recorder, lease)
    return lease


def _record_uid(recorder: RunRecorder, lease: sandbox.UidLease) -> None:
    # With the first batch (within FLUSH_INTERVAL_S): a write of its own here cost a busy host
    # tens of milliseconds before the sandbox could start.
    recorder.run.sandbox_uid = lease.uid
    recorder.save_later("sandbox_uid")


def _make_scratch(
    run: Run, size_bytes: int, work_dir: Path, policy: sandbox.Policy
) -> scratch.Scratch | None:
    if size_bytes <= 0:
        return None
    if policy.unsandboxed:
        raise _RunEnds(
            Run.Status.FAILED, "this experiment needs a scratch disk, made for sandboxes"
        )
    try:
        assert policy.sandbox_uid is not None  # the run's lease
        return scratch.create(run.pk, size_bytes, work_dir, policy.sandbox_uid)
    except scratch.ScratchError as exc:
        raise _RunEnds(Run.Status.FAILED, str(exc)) from exc


def _trace(
    passes: _Passes,
    report: sandbox.HostReport,
    sampled: dict[str, Any],
    params: dict[str, Any],
    measured: _PassResult,
    expected_calls: int | None,
) -> None:
    """The traced pass (and, for "sampled", an untraced pass of the same short work first, so
    the observer effect compares like with like). Figures stay those of the measured pass.
    ``expected_calls``: what the full work traces, for the page's ETA."""
    recorder, run = passes.recorder, passes.run_row
    unavailable = [c for c in (report.check("ptrace"), report.check("strace")) if c and not c.ok]
    if unavailable or passes.policy.unsandboxed:
        reason = "; ".join(f"{c.name}: {c.detail}" for c in unavailable) or (
            "unsandboxed runs are not traced"
        )
        recorder.set_trace(status="unavailable", reason=f"no trace on this host: {reason}")
        return
    full = run.trace_mode == Run.TraceMode.FULL
    work = params if full else sampled
    reference = measured
    if not full:
        reference = passes.run(work, label="untraced reference", progress=(0.7, 0.1))
        if reference.stop and reference.stop.status == Run.Status.CANCELLED:
            raise reference.stop
        if reference.stop or reference.work_ns is None:
            failure = reference.stop.reason if reference.stop else _verdict(reference).reason
            recorder.set_trace(status="failed", reason=f"the untraced reference failed: {failure}")
            return
    which = "the measured work, again" if full else "a short sample of the work"
    recorder.set_trace(
        status="tracing",
        reason="",
        passed=f"traced pass: {which} ({_describe(work)}); figures come from the untraced pass",
        expected_events=expected_calls if full and not passes.trace_set else None,
        tracing_since=time.time(),
    )
    result = passes.run(work, label="traced pass", progress=(0.8, 0.2), traced=True)
    if result.stop and result.stop.status == Run.Status.CANCELLED:
        raise result.stop
    verdict = _trace_verdict(result, reference, recorder.trace_total, passes.rate_metric)
    recorder.set_trace(**verdict)
    observer = verdict.get("observer") or {}
    trace_cost.record(observer.get("per_event_us"), recorder.trace_total)


def _fault_pass(
    passes: _Passes, report: sandbox.HostReport, work: dict[str, Any], fault: scope.Fault
) -> None:
    """The short work again under strace, with ``fault`` injected: the probe's result rows say
    what each layer saw, and strace's own lines show the calls it failed."""
    recorder = passes.recorder
    unavailable = [c for c in (report.check("ptrace"), report.check("strace")) if c and not c.ok]
    if unavailable or passes.policy.unsandboxed or scope.seccomp_bpf_problem():
        reason = "; ".join(f"{c.name}: {c.detail}" for c in unavailable) or (
            scope.seccomp_bpf_problem() or "unsandboxed runs are not traced"
        )
        recorder.log(f"no fault injection on this host: {reason}", level="error", source="runner")
        return
    recorder.log(f"fault pass: {fault.describe()}", source="runner")
    faulted = {"syscall": fault.syscall, "errno": fault.errno, "when": fault.when}
    result = passes.run(
        {**work, FAULT_PARAM: faulted}, label=FAULT_PASS, progress=(0.95, 0.05), fault=fault
    )
    if result.stop and result.stop.status == Run.Status.CANCELLED:
        raise result.stop
    if result.stop or result.errors or not result.done:
        failure = result.stop.reason if result.stop else _verdict(result).reason
        recorder.log(f"the fault pass failed: {failure}", level="error", source="runner")
    injected = [e for e in result.fault_events if "(INJECTED)" in (e.ret or "")]
    for event in injected[:FAULT_LINES_LOGGED]:
        recorder.log(f"strace: [pid {event.pid}] {call_text(event)}", source="runner")
    recorder.on_event(
        {
            "type": "result",
            "rows": [
                {
                    "metric": f"{fault.syscall} calls failed by strace, {fault.errno} injected",
                    "value": len(injected),
                    "unit": "calls",
                    "note": f"{fault.describe()}. Counted in strace's own output (lines marked "
                    "INJECTED): one per process that reached that call.",
                    "layer": "strace",
                }
            ],
        }
    )


def _describe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _trace_verdict(
    result: _PassResult, reference: _PassResult, events: int, rate_metric: str | None
) -> dict[str, Any]:
    if result.stop:
        return {"status": "cut", "reason": f"trace cut short: {result.stop.reason}"}
    if not result.began:
        return {"status": "failed", "reason": "the traced pass never reached the experiment"}
    if result.errors or result.work_ns is None:
        failure = result.errors[-1] if result.errors else result.outcome.describe()
        return {"status": "failed", "reason": f"the traced pass failed: {failure}"}
    untraced_s, traced_s = reference.work_ns / 1e9, result.work_ns / 1e9
    observer: dict[str, Any] = {
        "untraced_work_s": untraced_s,
        "traced_work_s": traced_s,
        "slowdown": traced_s / untraced_s if untraced_s else None,
        "events": events,
        "per_event_us": (traced_s - untraced_s) / events * 1e6 if events else None,
    }
    traced_cpu_s, untraced_cpu_s = result.cpu_s(), reference.cpu_s()
    if events and traced_cpu_s is not None and untraced_cpu_s is not None:
        # CPU time holds still where wall time does not (a CPU shared with other work): the
        # tracer's, the tracees' (the cgroup's account) and this runner's parsing and storing.
        observer["cpu_per_event_us"] = (traced_cpu_s - untraced_cpu_s) / events * 1e6
    untraced_rate, traced_rate = reference.metric(rate_metric), result.metric(rate_metric)
    if untraced_rate and traced_rate:
        # Fixed-time work takes as long traced as untraced: what tracing costs is the rate.
        observer.update(
            metric=rate_metric,
            untraced_rate=untraced_rate,
            traced_rate=traced_rate,
            slowdown=untraced_rate / traced_rate,
            per_event_us=None,
        )
    return {"status": "done", "reason": "", "observer": observer}


@dataclass
class _PassResult:
    stop: _RunEnds | None
    outcome: sandbox.Outcome
    errors: list[str]
    done: bool
    work_ns: int | None
    results: list[dict[str, Any]]
    began: bool = True
    # A fault pass's trace: kept here, not stored as the run's trace.
    fault_events: list[TraceEvent] = field(default_factory=list)
    runner_cpu_s: float = 0.0  # this runner's own CPU time during the pass

    def cpu_s(self) -> float | None:
        """CPU time of the pass: its cgroup's (sandbox, worker, tracer) and the runner's."""
        cgroup_s = self.outcome.cpu_s
        return None if cgroup_s is None else cgroup_s + self.runner_cpu_s

    def metric(self, name: str | None) -> float | None:
        row = next((r for r in self.results if name and r.get("metric") == name), None)
        value = row.get("value") if row else None
        return float(value) if isinstance(value, int | float) else None


class _Passes:
    """Runs the worker in the sandbox, once per pass, and feeds what it says to the recorder."""

    def __init__(
        self,
        run: Run,
        recorder: RunRecorder,
        policy: sandbox.Policy,
        probe: str,
        work_dir: Path,
        rate_metric: str | None,
    ) -> None:
        self.run_row, self.recorder, self.policy = run, recorder, policy
        self.probe, self.work_dir, self.rate_metric = probe, work_dir, rate_metric
        # The measured pass's last progress line: other passes show it, never their own rate.
        self.measured_message = ""
        self.trace_set = ""  # strace -e trace=, see sysops.tracing.scope
        # A sandbox already started with this run's policy, its worker waiting for the job.
        self.warm: warm.WarmSandbox | None = None

    def run(
        self,
        params: dict[str, Any],
        *,
        label: str,
        progress: tuple[float, float],
        traced: bool = False,
        fault: scope.Fault | None = None,
    ) -> _PassResult:
        owner_uid = self.policy.sandbox_uid
        if owner_uid is None:
            owner_uid = os.geteuid()
        capture = None
        if traced or fault:
            capture = TraceCapture(
                self.work_dir, owner_uid=owner_uid, trace_set=self.trace_set, fault=fault
            )
        # The runner's own work (storing, publishing) keeps off the traced pass's CPU too.
        affinity = os.sched_getaffinity(0)
        started = resource.getrusage(resource.RUSAGE_SELF)
        try:
            if capture is not None:
                keep_off_cpu(_trace_cpu(self.run_row.pk))
            result = self._run(params, label, progress, capture, keep_trace=fault is not None)
            ended = resource.getrusage(resource.RUSAGE_SELF)
            result.runner_cpu_s = (ended.ru_utime + ended.ru_stime) - (
                started.ru_utime + started.ru_stime
            )
            return result
        finally:
            os.sched_setaffinity(0, affinity)
            if capture is not None:
                capture.close()

    def _run(
        self,
        params: dict[str, Any],
        label: str,
        progress: tuple[float, float],
        capture: TraceCapture | None,
        keep_trace: bool = False,
    ) -> _PassResult:
        """``keep_trace``: the trace goes to the result, not to the run's stored trace."""
        kept: list[TraceEvent] = []
        on_trace = kept.extend if keep_trace else self.recorder.on_trace
        ready, self.warm = self.warm if label == MEASURED_PASS else None, None
        if ready is not None:
            proc, events_r, events_w = ready.proc, ready.events_r, ready.events_fd
        else:
            proc, events_r, events_w = self._start(capture)
        if label == MEASURED_PASS:
            self.recorder.stage("sandbox_started")
        where = "" if label == MEASURED_PASS else f" for the {label}"
        ahead = ", ahead of the run: its worker was waiting for the job" if ready else ""
        self.recorder.log(f"sandbox started{where} (pid {proc.pid}{ahead})", source="runner")
        if not proc.bounded:
            _mark_unbounded(self.run_row, self.recorder, "the run's cgroup could not be made")
        state = _PassState(self.recorder, label, progress, self.measured_message)
        try:
            # (events_w is the worker's descriptor number: the runner's copy is closed.)
            job = {"probe": self.probe, "params": params, "events_fd": events_w}
            assert proc.stdin is not None and proc.stderr is not None
            try:
                proc.stdin.write(json.dumps(job).encode())
                proc.stdin.close()
            except BrokenPipeError:
                pass
            stop = _pump(
                state, proc, events_r, proc.stderr.fileno(), self.policy, capture, on_trace
            )
            if stop is not None:
                proc.kill()
            proc.wait()
            outcome = proc.outcome()
            if capture is not None:
                on_trace(capture.finish())
        finally:
            os.close(events_r)
            proc.kill()
            proc.cleanup()
        began = capture.filter.began if capture else True
        if state.measured:
            self.measured_message = self.recorder.run.progress_message
        return _PassResult(
            stop, outcome, state.errors, state.done, state.work_ns, state.results, began, kept
        )

    def _start(self, capture: TraceCapture | None) -> tuple[sandbox.SandboxProcess, int, int]:
        events_r, events_w = os.pipe()
        if capture is not None:
            capture.watch_events_pipe(events_w)
        try:
            proc = sandbox.start(
                self.policy,
                sandbox.worker_command(self.policy),
                pass_fds=(events_w,),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                run_id=self.run_row.pk,
                wrapper=capture.wrapper(_trace_cpu(self.run_row.pk)) if capture else (),
            )
        except sandbox.SandboxRefused as exc:
            os.close(events_r)
            raise _RunEnds(Run.Status.FAILED, f"sandbox refused: {exc}") from exc
        finally:
            os.close(events_w)
        return proc, events_r, events_w


def _trace_cpu(run_id: int) -> int:
    """The CPU a traced pass is pinned to, spread over the CPUs this runner may use."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[run_id % len(cpus)]


class _PassState:
    """One pass's view of the worker's events. The measured pass records them all;
    another pass contributes only its progress, logs and errors."""

    def __init__(
        self,
        recorder: RunRecorder,
        label: str,
        progress: tuple[float, float],
        measured_message: str = "",
    ) -> None:
        self.recorder, self.label = recorder, label
        self.measured_message = measured_message
        self.measured = label == MEASURED_PASS
        # A fault pass's rows say what each layer saw under the fault: the run keeps them.
        self.keeps_results = self.measured or label == FAULT_PASS
        self.offset, self.span = progress
        self.errors: list[str] = []
        self.done = False
        self.work_ns: int | None = None
        self.results: list[dict[str, Any]] = []
        self.bad_lines = 0

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "error":
            self.errors.append(str(event.get("message", "")))
        elif kind == "done":
            self.done = True
            self.work_ns = event.get("work_ns")
        elif kind == "result":
            self.results.extend(event["rows"][: max(0, MAX_RESULT_ROWS - len(self.results))])
        if kind == "progress":
            # Another pass's rate (a traced pass runs many times slower) is not a figure: its
            # line says how far it got and repeats the measured pass's own last line.
            message = str(event.get("message", ""))
            if not self.measured:
                message = f"{self.label} {float(event['value']):.0%}"
                if self.measured_message:
                    message += f" · measured: {self.measured_message}"
            event = {
                **event,
                "value": self.offset + self.span * float(event["value"]),
                "message": message,
            }
        elif kind == "result" and self.keeps_results:
            pass
        elif not self.measured:
            if kind in ("log", "error"):
                message = f"{self.label}: {event.get('message', '')}"
                level = "error" if kind == "error" else str(event.get("level", "info"))
                self.recorder.log(message, level=level)
            return
        self.recorder.on_event(event)


def _pump(
    state: _PassState,
    proc: sandbox.SandboxProcess,
    events_fd: int,
    stderr_fd: int,
    policy: sandbox.Policy,
    capture: TraceCapture | None,
    on_trace: Callable[[list[TraceEvent]], None],
) -> _RunEnds | None:
    """Read events and stderr until both close; returns why the pass must stop early, if so."""
    recorder = state.recorder
    deadline = time.monotonic() + policy.wall_s
    output_cap = settings.SYSOPS_OUTPUT_CAP_BYTES
    event_cap = settings.SYSOPS_MAX_EVENTS
    trace_cap = settings.SYSOPS_TRACE_MAX_EVENTS
    total_bytes = 0
    event_lines = 0
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
                    event_lines += 1
                    if event_lines <= event_cap:
                        _on_event_line(state, line)
                elif stderr_bytes < STDERR_CAP_BYTES:
                    stderr_bytes += len(line)
                    recorder.log(line.decode("utf-8", "replace"), level="warning", source="stderr")
        if capture is not None:
            on_trace(capture.take())
            if recorder.trace_total >= trace_cap:
                return _RunEnds(Run.Status.FAILED, f"the cap of {trace_cap:,} trace events reached")
        if total_bytes > output_cap:
            return _RunEnds(Run.Status.FAILED, f"output cap of {output_cap} bytes exceeded")
        if event_lines > event_cap:
            return _RunEnds(Run.Status.FAILED, f"event cap of {event_cap:,} events exceeded")
        if time.monotonic() >= deadline:
            return _RunEnds(
                Run.Status.TIMED_OUT, f"wall-clock limit of {policy.wall_s:g} s reached"
            )
        if recorder.due() and recorder.flush():
            return _RunEnds(Run.Status.CANCELLED, "cancelled by the user")
    return None


def _on_event_line(state: _PassState, line: bytes) -> None:
    event = parse_line(line)
    if isinstance(event, BadLine):
        _bad_line(state, f"{event.reason}: {event.excerpt}")
        return
    for reason in event.pop("rejected", []):
        _bad_line(state, f"result row dropped: {reason}")
    state.on_event(event)


def _bad_line(state: _PassState, message: str) -> None:
    state.bad_lines += 1
    if state.bad_lines <= BAD_LINES_LOGGED:
        state.recorder.log(message, level="error", source="runner")
    elif state.bad_lines == BAD_LINES_LOGGED + 1:
        message = f"more than {BAD_LINES_LOGGED} bad events: the rest are not logged"
        state.recorder.log(message, level="error", source="runner")


def _verdict(result: _PassResult) -> _RunEnds:
    outcome = result.outcome
    if result.errors:
        return _RunEnds(Run.Status.FAILED, f"{result.errors[-1]} ({outcome.describe()})")
    if outcome.exit_code == 0 and outcome.signal is None and not outcome.limits_hit:
        if result.done:
            return _RunEnds(Run.Status.SUCCEEDED, "completed")
        return _RunEnds(Run.Status.FAILED, "worker exited without reporting done")
    return _RunEnds(Run.Status.FAILED, outcome.describe())


def serve(
    run_id: int,
    *,
    ready_ns: int | None = None,
    agent_socket: Path | None = None,
    prepared: warm.Prepared | None = None,
) -> None:
    """The body of a runner process (``python -m sysops.agent.runner_process <run_id>``).

    Batches go to the agent over ``agent_socket`` (sysops.agent.link) or, without one, as JSON
    lines on the original stdout; either way a reader that goes away never ends the run."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed goes to stderr
    sandbox.set_child_subreaper()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # A broken pipe is an error to handle (EPIPE), never a signal that kills the runner.
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    link = None
    if agent_socket is not None:
        link = AgentLink(agent_socket, run_id)
        link.connect()
        publish: Publish = link.publish
    else:

        def publish(group: str, message: dict[str, Any]) -> None:
            if out.closed:
                return
            try:
                out.write(json.dumps({"group": group, "message": message}) + "\n")
            except OSError:  # the agent is gone: the run goes on, recorded in the database
                with contextlib.suppress(OSError):
                    out.close()

    try:
        with frozen_heap(thaw=False):
            execute(run_id, publish, ready_ns=ready_ns, prepared=prepared, link=link)
    finally:
        if link is not None:
            link.close()


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # Unwinds through the sandbox's cleanup; execute() records the reason.
    raise _RunEnds(Run.Status.FAILED, "runner stopped by SIGTERM (agent shutting down)")
