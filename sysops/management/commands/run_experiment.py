"""Run one experiment headless, through the same sandbox and runner as the web, and print it."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from typing import Any

from django import forms
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.http import QueryDict

from sysops import live, sandbox, services
from sysops.agent.runner import execute, frozen_heap
from sysops.batch import MESSAGE_TYPE, RunBatch
from sysops.experiments import registry
from sysops.experiments.base import ALL_HOSTS
from sysops.models import Run
from sysops.templatetags.sysops_tags import has_ratios, num, spread_text, tail_text
from sysops.tracing.render import observer_sentence, summary_lines

# How often a run queued for another host is looked at while the command waits for it.
POLL_INTERVAL_S = 0.5


class Command(BaseCommand):
    help = "Run an experiment in the sandbox and print its result table; non-zero exit on failure."
    _last_progress = ""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("experiment", help="experiment slug, e.g. syscall-cost")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="a form field; repeat it; list fields take commas (layers=python,native)",
        )
        parser.add_argument(
            "--trace",
            choices=Run.TraceMode.values,
            default=Run.TraceMode.OFF,
            help="off, sampled (a short traced pass) or full (the whole work again, traced)",
        )
        parser.add_argument(
            "--host",
            default="",
            metavar="NAME",
            help="queue the run for the agent on live host NAME and wait for it, instead of "
            "running it here",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="print the run and its result rows as one JSON object instead of the table",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        exp = registry.get(options["experiment"])
        if exp is None:
            slugs = ", ".join(e.slug for e in registry.catalog())
            raise CommandError(f"unknown experiment {options['experiment']!r}; try one of: {slugs}")
        data = self._form_data(exp.form_class(), options["param"])
        data["trace"] = options["trace"]
        if options["host"] == ALL_HOSTS:
            raise CommandError("--host takes one host name; all hosts is the web form's")
        data["host"] = options["host"]
        params, trace_mode, form = exp.clean_params(data)
        if params is None:
            lines = [f"  {field}: {' '.join(errs)}" for field, errs in form.errors.items()]
            raise CommandError("invalid parameters:\n" + "\n".join(lines))

        if options["host"]:
            run = services.run_create(
                experiment=exp.slug,
                params=params,
                trace_mode=trace_mode,
                user=None,
                pinned_host=options["host"],
            )
            self.stderr.write(f"run #{run.pk}: {exp.title}, queued for host {options['host']}")
            run = self._wait(run)
        else:
            # Created and claimed in one transaction: no agent ever sees it queued.
            with transaction.atomic():
                run = Run.objects.create(experiment=exp.slug, params=params, trace_mode=trace_mode)
                Run.objects.claim(run.pk, by=f"cli:{socket.gethostname()}:{os.getpid()}")
            self.stderr.write(f"run #{run.pk}: {exp.title}")
            sandbox.set_child_subreaper()
            with frozen_heap():  # (tests call this command in their own process)
                run = execute(run.pk, self._publish)
        if options["json"]:
            self.stdout.write(json.dumps(_as_json(run), indent=2, ensure_ascii=False))
        else:
            self._print_results(run)
        if run.status != Run.Status.SUCCEEDED:
            self.stderr.write(f"run #{run.pk} {run.status}: {run.reason}")
            sys.exit(1)

    def _form_data(self, form: forms.Form, pairs: list[str]) -> QueryDict:
        given: dict[str, str] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if name == "trace":
                raise CommandError(
                    "the trace mode is an option of its own: --trace off|sampled|full"
                )
            if name == "host":
                raise CommandError("the host is an option of its own: --host NAME")
            if not sep or name not in form.fields:
                known = ", ".join(form.fields)
                raise CommandError(f"--param {pair!r}: expected NAME=VALUE with NAME in {known}")
            given[name] = value
        data = QueryDict(mutable=True)
        for name, field in form.fields.items():
            multiple = isinstance(field, forms.MultipleChoiceField)
            if name in given:
                values = given[name].split(",") if multiple else [given[name]]
            else:
                initial = form.get_initial_for_field(field, name)
                if initial is None:
                    continue
                values = list(initial) if multiple else [initial]
            data.setlist(name, [str(v) for v in values])
        return data

    def _wait(self, run: Run) -> Run:
        """Until an agent on the run's host has finished it; Ctrl-C cancels it."""
        try:
            while not run.is_terminal:
                time.sleep(POLL_INTERVAL_S)
                run.refresh_from_db()
                if run.progress_message and run.progress_message != self._last_progress:
                    self._last_progress = run.progress_message
                    self.stderr.write(f"  {run.progress:4.0%} {run.progress_message}")
        except KeyboardInterrupt:
            services.run_cancel(run=run)
            raise
        return run

    def _publish(self, group: str, message: dict[str, Any]) -> None:
        if message.get("type") == MESSAGE_TYPE:
            batch = RunBatch.from_message(message)
            for entry in batch.logs:
                if entry["level"] != "info":
                    self.stderr.write(f"  [{entry['source']}] {entry['message']}")
            if batch.progress_message and batch.progress_message != self._last_progress:
                self._last_progress = batch.progress_message
                self.stderr.write(f"  {batch.progress:4.0%} {batch.progress_message}")
        live.publish(group, message)

    def _print_results(self, run: Run) -> None:
        ratios = has_ratios(run.results)
        header = ("metric", "value", "unit", "min", "IQR", "p99", "max", "n")
        header += ("× native",) if ratios else ()
        rows = [header]
        for row in run.results:
            dist = row.get("dist")
            cells = (
                str(row.get("metric", "")) + (" (partial)" if row.get("partial") else ""),
                num(row.get("value")),
                str(row.get("unit", "")),
                num(dist["min"]) if dist else "",
                spread_text(dist),
                tail_text(dist, "p99"),
                num(dist["max"]) if dist else "",
                num(dist["n"]) if dist else "",
            )
            ratio = row.get("ratio_to_native")
            cells += (f"{num(ratio)}×" if ratio is not None else "",) if ratios else ()
            rows.append(cells)
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        for r in rows:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
        if run.unsandboxed:
            self.stdout.write("UNSANDBOXED: this run was not in a sandbox.")
        if run.trace_mode != Run.TraceMode.OFF:
            self._print_trace(run)
        if run.host:
            fp = run.host.fingerprint
            self.stdout.write(f"host: {fp.get('hostname')} · clocksource {fp.get('clocksource')}")

    def _print_trace(self, run: Run) -> None:
        trace = run.trace
        self.stdout.write("")
        if trace.get("passed"):
            self.stdout.write(trace["passed"])
        if trace.get("reason"):
            self.stdout.write(f"trace {trace.get('status')}: {trace['reason']}")
        for line in summary_lines(trace.get("summary")):
            self.stdout.write(line)
        sentence = observer_sentence(trace.get("observer"))
        if sentence:
            self.stdout.write(sentence)


def _as_json(run: Run) -> dict[str, Any]:
    """What a script needs of a finished run: its outcome, the rows exactly as stored (metric,
    value, unit, note, and where present layer, dist, ratio_to_native, detail…), the host."""
    trace = run.trace or {}
    return {
        "run": run.pk,
        "experiment": run.experiment,
        "status": run.status,
        "reason": run.reason,
        "unsandboxed": run.unsandboxed,
        "params": run.params,
        "trace_mode": run.trace_mode,
        "trace": {
            key: trace.get(key)
            for key in ("status", "reason", "summary", "observer")
            if key in trace
        },
        "host": run.host.fingerprint if run.host else None,
        "results": run.results,
    }
