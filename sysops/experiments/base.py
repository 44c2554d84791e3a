"""What an experiment declares on the web side: metadata, a bounded form, charts and limits.

The probe (``sysops/experiments/<name>/probe.py``) is the sandbox side and imports none of this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from sysops.models import HostAgent, Run
from sysops.tracing import scope

# Form fields about the trace rather than the experiment: kept in the run's params (so a run
# again or the runner's re-validation sees them) but never handed to the probe.
TRACE_OPTION_FIELDS = ("trace_set", "inject_syscall", "inject_errno", "inject_when")

MAN_PAGE_URL = "https://man7.org/linux/man-pages/man{section}/{name}.{section}.html"


# The host field's two choices that are not a host name.
ANY_HOST = ""
ALL_HOSTS = "*"


def host_choices() -> list[tuple[str, str]]:
    """Any host, each live host by name, all of them; read when the form is drawn."""
    live = [(name, name) for name in HostAgent.objects.live_names()]
    return [(ANY_HOST, "any host"), *live, (ALL_HOSTS, "all hosts: once on each live host")]


def man_page_url(name: str, section: int = 2) -> str:
    return MAN_PAGE_URL.format(name=name, section=section)


class ExperimentForm(forms.Form):
    """Every experiment's form ends with the trace mode; its own fields come first."""

    trace = forms.ChoiceField(
        choices=Run.TraceMode.choices,
        initial=Run.TraceMode.OFF,
        required=False,
        help_text="Figures always come from an untraced pass; a trace is an extra pass.",
    )

    trace_set = forms.CharField(
        required=False,
        initial="all",
        max_length=1000,
        label="Trace set",
        help_text=(
            "Like strace -e trace=: all, a class (file, network, process, memory, signal) or "
            "syscall names separated by commas. Calls outside it are not stopped (strace "
            "--seccomp-bpf), so they cost almost nothing, and are not stored."
        ),
    )
    # {syscall: the path its fault demo uses}: experiments that teach errno with a fault
    # injected by strace set this; the form then offers the inject_* fields.
    fault_paths: Mapping[str, str] = {}
    # Set by refuse_full_trace_over_cap: how many calls a full trace of this work traces.
    expected_calls: int | None = None
    host = forms.CharField(
        required=False,
        max_length=255,
        widget=forms.Select(choices=host_choices),
        help_text="Where it runs. All hosts: the same parameters once on each, compared.",
    )

    def clean_host(self) -> list[str]:
        """The host names to pin one run each to: [ANY_HOST], one live host, or every one."""
        name = (self.cleaned_data.get("host") or "").strip()
        if name == ANY_HOST:
            return [ANY_HOST]
        live = HostAgent.objects.live_names()
        if name == ALL_HOSTS:
            if not live:
                raise ValidationError("No host is alive right now: choose any host.")
            return live
        if name in live:
            return [name]
        last = HostAgent.objects.filter(name=name).order_by("-heartbeat_at").first()
        if last is None:
            raise ValidationError(f"No agent runs on a host named {name!r}.")
        raise ValidationError(
            f"Host {name!r} is gone (last heartbeat {last.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC)."
        )

    def clean_trace(self) -> str:
        return self.cleaned_data.get("trace") or Run.TraceMode.OFF

    def clean_trace_set(self) -> str:
        try:
            return scope.parse_trace_set(self.cleaned_data.get("trace_set"))
        except scope.TraceSetError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_inject_syscall(self) -> str:
        syscall = self.cleaned_data.get("inject_syscall") or ""
        if syscall and scope.seccomp_bpf_problem():
            raise forms.ValidationError(f"No fault injection here: {scope.seccomp_bpf_problem()}")
        return syscall

    def refuse_full_trace_over_cap(
        self,
        data: Mapping[str, Any],
        calls: int,
        advice: str = "fewer iterations or repetitions",
    ) -> None:
        """A full trace of ``calls`` traced calls would be cut by the event cap: say so next to
        the trace field, before any run."""
        self.expected_calls = calls
        cap = settings.SYSOPS_TRACE_MAX_EVENTS
        if data.get("trace") == Run.TraceMode.FULL and calls > cap and not data.get("trace_set"):
            self.add_error(
                "trace",
                f"A full trace of {calls:,} calls is over the {cap:,}-event cap: choose"
                f" sampled, or {advice}.",
            )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.fault_paths:
            self.fields["inject_syscall"] = forms.ChoiceField(
                choices=[("", "none")]
                + [(name, f"{name} on {path}") for name, path in self.fault_paths.items()],
                required=False,
                label="Inject a fault into",
                help_text=(
                    "An extra pass under strace -e inject: the chosen call fails with the errno "
                    "below, and the results show what each layer saw."
                ),
            )
            self.fields["inject_errno"] = forms.ChoiceField(
                choices=[(name, name) for name in scope.INJECTABLE_ERRNOS],
                initial="EIO",
                required=False,
                label="Errno to inject",
            )
            self.fields["inject_when"] = forms.IntegerField(
                min_value=1,
                max_value=scope.INJECT_WHEN_MAX,
                initial=3,
                required=False,
                label="On call number",
                help_text="Counted per process, on that file only (strace's when=N).",
            )
        last = ["trace", "trace_set", "inject_syscall", "inject_errno", "inject_when", "host"]
        self.order_fields([name for name in self.fields if name not in last] + last)

        # A choice given twice (``layers=native&layers=native``) counts once, in every
        # experiment's multiple-choice fields, before their budgets are computed.
        for choices in self.fields.values():
            if isinstance(choices, forms.MultipleChoiceField):
                choices.to_python = _distinct(choices.to_python)  # type: ignore[method-assign]

    def trace_options(self, params: dict[str, Any]) -> None:
        """Keep in ``params`` only the trace options that do something: a set when tracing,
        a fault when one is chosen."""
        if not params.get("trace_set") or params.get("trace") == Run.TraceMode.OFF:
            params.pop("trace_set", None)
        if not params.get("inject_syscall"):
            for name in ("inject_syscall", "inject_errno", "inject_when"):
                params.pop(name, None)
        else:
            params["inject_errno"] = params.get("inject_errno") or "EIO"
            params["inject_when"] = params.get("inject_when") or 3


def _distinct(to_python: Callable[[Any], list[Any]]) -> Callable[[Any], list[Any]]:
    def distinct_to_python(value: Any) -> list[Any]:
        return list(dict.fromkeys(to_python(value)))

    return distinct_to_python


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    x_label: str  # with the unit of the swept or elapsed quantity: "parent memory (MiB)"
    y_label: str
    series: tuple[str, ...]
    points: bool = False  # scatter of samples rather than a line through them
    # Human names for the legend, by series ("latency_p50_us": "p50 latency"); default: the id.
    labels: Mapping[str, str] = field(default_factory=dict)
    x_log: bool = False  # log axes, for sweeps over decades
    y_log: bool = False
    # Vertical marks on the x axis: ((x, "FD_SETSIZE"), ...), e.g. a cliff or a limit.
    x_marks: tuple[tuple[float, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "x_label": self.x_label,
            "y_label": self.y_label,
            "series": list(self.series),
            "points": self.points,
            "labels": {name: self.labels.get(name, name) for name in self.series},
            "x_log": self.x_log,
            "y_log": self.y_log,
            "x_marks": [list(mark) for mark in self.x_marks],
        }


@dataclass(frozen=True)
class Experiment:
    slug: str
    title: str
    explanation: str
    syscalls: tuple[str, ...]
    look_for: str
    form_class: type[forms.Form]
    probe: str  # module path of the sandbox-side probe
    charts: Callable[[Mapping[str, Any]], list[Chart]]
    wall_s: Callable[[Mapping[str, Any]], float]
    # Per-experiment overrides of sandbox limits (names of sysops.sandbox.Policy fields), which
    # the runner clamps to the operator's ceilings (sysops.experiments.limits).
    limits: Callable[[Mapping[str, Any]], dict[str, Any]] = field(default=lambda params: {})
    # Bytes the run may write on a real disk: > 0 gets it a size-capped scratch directory at
    # /scratch (see sysops/agent/scratch.py); the sandbox's own /tmp is a tmpfs.
    scratch_bytes: Callable[[Mapping[str, Any]], int] = field(default=lambda params: 0)
    # The parameters of the short traced pass of trace mode "sampled".
    sampled_params: Callable[[Mapping[str, Any]], dict[str, Any]] = field(
        default=lambda params: dict(params)
    )
    # For work that runs for a fixed time: the result metric that measures its rate (the observer
    # effect compares it, since the traced pass takes as long as the untraced one).
    rate_metric: str | None = None
    hidden: bool = False
    # Man page sections where not 2, for library calls it uses: {"posix_spawn": 3}.
    man_sections: Mapping[str, int] = field(default_factory=dict)
    # Its figures are timings: the agent runs it with nothing beside it (another run on the
    # same CPUs skews them). False for experiments whose results are not times or rates.
    timing: bool = True

    def man_pages(self) -> list[tuple[str, str]]:
        """(syscall, man7.org URL) for each syscall the experiment exercises."""
        return [
            (name, man_page_url(name, self.man_sections.get(name, 2))) for name in self.syscalls
        ]

    def clean_params(
        self, data: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, str, forms.Form]:
        """Validate raw input; returns (JSON-ready params or None, trace mode, the bound form)."""
        form = self.form_class(data)
        if not form.is_valid():
            return None, Run.TraceMode.OFF, form
        params = dict(form.cleaned_data)
        if isinstance(form, ExperimentForm):
            form.trace_options(params)
        # Where it runs is not what it measures: the view pins runs with form.cleaned_data.
        params.pop("host", None)
        return params, params.pop("trace"), form

    def split_trace_options(
        self, params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], str, scope.Fault | None]:
        """(the probe's params, the trace set, the fault) from a run's stored params."""
        probe_params = {k: v for k, v in params.items() if k not in TRACE_OPTION_FIELDS}
        fault = None
        syscall = params.get("inject_syscall")
        paths = getattr(self.form_class, "fault_paths", {})
        if syscall and syscall in paths:
            fault = scope.Fault(
                syscall, str(params["inject_errno"]), int(params["inject_when"]), paths[syscall]
            )
        return probe_params, str(params.get("trace_set") or ""), fault

    def form_data(self, params: Mapping[str, Any], trace_mode: str) -> dict[str, Any]:
        """Stored parameters back as form input (run again, re-validation in the runner)."""
        return {**params, "trace": trace_mode}
