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

from sysops import permissions, selectors, services
from sysops.experiments import registry
from sysops.models import Run
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
            "hosts": selectors.hosts(),
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
    if request.method == "POST":
        params, trace_mode, form = exp.clean_params(request.POST)
        if params is not None:
            runs = services.runs_create_on_hosts(
                experiment=exp.slug,
                params=params,
                trace_mode=trace_mode,
                user=request.user,
                hosts=form.cleaned_data["host"],
            )
            if len(runs) == 1:
                return redirect(runs[0])
            # The comparison page's contract: /compare/<comma-separated run ids>/.
            return redirect(f"/compare/{','.join(str(run.pk) for run in runs)}/")
        status = 400
    else:
        form, status = exp.form_class(), 200
    return render(
        request,
        "sysops/experiment.html",
        {"experiment": exp, "form": form, "sandbox": selectors.sandbox_report()},
        status=status,
    )


@require_GET
@user_required
def history(request: HttpRequest) -> HttpResponse:
    page = Paginator(Run.objects.select_related("user"), 50).get_page(request.GET.get("page"))
    return render(request, "sysops/history.html", {"page": page})


@require_GET
@user_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("host"), pk=run_id)
    context = selectors.run_context(run)
    context["sandbox"] = selectors.sandbox_report()
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
        experiment=exp.slug, params=params, trace_mode=trace_mode, user=request.user
    )
    return redirect(run)
