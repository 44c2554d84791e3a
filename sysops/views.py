"""Thin views: check who is asking, validate, call a service or a selector, render."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sysops import comparison, permissions, selectors, services
from sysops.experiments import registry
from sysops.experiments.base import Experiment
from sysops.history import HistoryFilterForm, is_staff
from sysops.models import Run
from sysops.tracing import cost as trace_cost
from sysops.tracing import errnos
from sysops.tracing.categories import CATEGORIES


def user_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not permissions.can_use(request.user):
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped


@require_GET
@user_required
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "sysops/dashboard.html",
        {
            "host": selectors.this_host(),
            "sandbox": selectors.sandbox_report(),
            "filter_cost": selectors.sandbox_filter_cost(),
            "experiments": registry.catalog(),
            "runs": selectors.recent_runs(),
        },
    )


@require_http_methods(["GET", "POST"])
@user_required
def experiment(request: HttpRequest, slug: str) -> HttpResponse:
    exp = registry.get(slug)
    if exp is None:
        raise Http404("no such experiment")
    based_on = _based_on(request, exp)
    initial = exp.form_data(based_on.params, based_on.trace_mode) if based_on else None
    if request.method == "POST":
        params, trace_mode, form = exp.clean_params(request.POST)
        if params is not None:
            run = services.run_create(
                experiment=exp.slug,
                params=params,
                trace_mode=trace_mode,
                user=request.user,
                parent=based_on,
            )
            return redirect(run)
        status = 400
    else:
        form, status = exp.form_class(initial=initial), 200
    context: dict[str, Any] = {
        "experiment": exp,
        "form": form,
        "sandbox": selectors.sandbox_report(),
    }
    if based_on is not None:
        # What the page tells the edited form apart from, as the browser would post it.
        context["based_on"] = based_on
        context["based_on_values"] = comparison.form_values(exp.form_class(initial=initial))
    return render(request, "sysops/experiment.html", context, status=status)


def _based_on(request: HttpRequest, exp: Experiment) -> Run | None:
    """The run a "run again with changes" form starts from (``?from=<id>``, then a hidden field)."""
    value = request.POST.get("from") if request.method == "POST" else request.GET.get("from")
    if not value:
        return None
    if not value.isdigit() or len(value) > 12:
        raise Http404("no such run")
    return get_object_or_404(Run, pk=int(value), experiment=exp.slug)


@require_GET
@user_required
def history(request: HttpRequest) -> HttpResponse:
    filters = HistoryFilterForm(request.GET or None, staff=is_staff(request.user))
    runs = filters.runs() if filters.is_bound else Run.objects.select_related("user", "host")
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(request, "sysops/history.html", {"page": page, "filters": filters})


@require_GET
@user_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("host"), pk=run_id)
    context = selectors.run_context(run)
    context["sandbox"] = selectors.sandbox_report()
    context["compare_candidates"] = comparison.candidates(run)
    if run.parent_id is not None and run.parent is not None:
        context["changes"] = comparison.param_changes(run.parent, run)
        context["parent_compare_ids"] = comparison.ids_text([run.parent, run])
    if run.trace_mode != Run.TraceMode.OFF:
        context["trace_help"] = errnos.help_tables()
        context["trace_categories"] = CATEGORIES
    return render(request, "sysops/run.html", context)


@require_POST
@user_required
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = services.run_cancel(run=get_object_or_404(Run, pk=run_id))
    return redirect(run)


@require_POST
@user_required
def run_again(request: HttpRequest, run_id: int) -> HttpResponse:
    old = get_object_or_404(Run, pk=run_id)
    exp = registry.get(old.experiment)
    if exp is None:
        raise Http404("that experiment no longer exists")
    params, trace_mode, form = exp.clean_params(exp.form_data(old.params, old.trace_mode))
    if params is None:
        return render(
            request,
            "sysops/experiment.html",
            {"experiment": exp, "form": form, "sandbox": selectors.sandbox_report()},
            status=400,
        )
    run = services.run_create(
        experiment=exp.slug, params=params, trace_mode=trace_mode, user=request.user, parent=old
    )
    return redirect(run)


@require_GET
@user_required
def trace_estimate(request: HttpRequest, slug: str) -> HttpResponse:
    """The form's trace-cost sentence for the parameters typed so far (htmx, on change)."""
    exp = registry.get(slug)
    if exp is None:
        raise Http404("no such experiment")
    form = exp.form_class(request.GET)
    form.is_valid()  # clean() counts the calls even when another field is wrong
    calls = getattr(form, "expected_calls", None)
    trace_set = form.cleaned_data.get("trace_set", "") if hasattr(form, "cleaned_data") else ""
    text = trace_cost.estimate_text(calls, trace_set, trace_cost.per_event_cost())
    return HttpResponse(text, content_type="text/plain; charset=utf-8")
