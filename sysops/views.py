"""Thin views: check who is asking, validate, call a service or a selector, render."""

from __future__ import annotations

import functools
import io
import ipaddress
import math
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib.auth.views import redirect_to_login
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    JsonResponse,
)
from django.middleware.csrf import CsrfViewMiddleware
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from sysops import comparison, permissions, selectors, services, stages
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


@require_safe
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


@require_http_methods(["GET", "HEAD", "POST"])
@user_required
def experiment(request: HttpRequest, slug: str) -> HttpResponse:
    exp = registry.get(slug)
    if exp is None:
        raise Http404("no such experiment")
    based_on = _based_on(request, exp)
    initial = exp.form_data(based_on.params, based_on.trace_mode) if based_on else None
    if request.method == "POST":
        received_ns = stages.now_ns()
        queued = services.queue_form(
            exp,
            request.POST,
            user=request.user,
            client_addr=client_address(request),
            parent=based_on,
            submission=request.POST.get("submission", ""),
            received_ns=received_ns,
        )
        return _queued(request, exp, queued, parent=based_on)
    return _experiment_page(request, exp, exp.form_class(initial=initial), based_on=based_on)


def _experiment_page(
    request: HttpRequest,
    exp: Experiment,
    form: forms.Form,
    *,
    status: int = 200,
    refusal: str = "",
    based_on: Run | None = None,
) -> HttpResponse:
    context: dict[str, Any] = {
        "experiment": exp,
        "form": form,
        "sandbox": selectors.sandbox_report(),
        "refusal": refusal,
    }
    if based_on is not None:
        # What the page tells the edited form apart from, as the browser would post it.
        initial = exp.form_data(based_on.params, based_on.trace_mode)
        context["based_on"] = based_on
        context["based_on_values"] = comparison.form_values(exp.form_class(initial=initial))
    return render(request, "sysops/experiment.html", context, status=status)


# A quota refusal asks a script to come back later; a person reads the message on the form.
QUOTA_RETRY_AFTER_S = 30
# A form posted by static/sysops/submit.js says so; the answer names the run it queued.
LIVE_SUBMIT_HEADER = "X-Sysops-Submit"
RUN_ID_HEADER = "X-Sysops-Run"
RUN_SHOWN_HEADER = "X-Sysops-Shown"


def client_address(request: HttpRequest) -> str | None:
    return ip_address_or_none(request.META.get("REMOTE_ADDR", ""))


def ip_address_or_none(text: str) -> str | None:
    """``text`` as a normalised IP address; None when it is not one."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def wants_html(request: HttpRequest) -> bool:
    """A browser asks for HTML; a script (curl, a client library) gets JSON."""
    return "text/html" in request.headers.get("Accept", "")


def _queued(
    request: HttpRequest, exp: Experiment, queued: services.FormQueued, *, parent: Run | None
) -> HttpResponse:
    """Go to the run queued (its page itself when the form's script posted it), or to the
    comparison of several; the form again with its errors (400), or with a quota's reason next
    to the submit button (429), when nothing was queued."""
    if queued.refusal:
        if wants_html(request):
            response = _experiment_page(
                request, exp, queued.form, status=429, refusal=queued.refusal, based_on=parent
            )
        else:
            response = JsonResponse({"error": queued.refusal}, status=429)
        response["Retry-After"] = str(QUOTA_RETRY_AFTER_S)
        return response
    runs = queued.runs
    if not runs:
        return _experiment_page(request, exp, queued.form, status=400, based_on=parent)
    if len(runs) == 1 and request.headers.get(LIVE_SUBMIT_HEADER) == "live":
        # The form page's script posted it and swaps the run page in without a navigation, its
        # socket already watching the run (static/sysops/submit.js): no redirect to wait for.
        response = _run_page(request, runs[0], status=201)
        response["Location"] = runs[0].get_absolute_url()
        # What the page shows: its socket's first snapshot leaves out what did not change.
        response[RUN_ID_HEADER] = str(runs[0].pk)
        response[RUN_SHOWN_HEADER] = f"{runs[0].last_seq} {runs[0].status}"
        return response
    if len(runs) == 1:
        return redirect(runs[0])
    return redirect("compare", ",".join(str(run.pk) for run in runs))


def _based_on(request: HttpRequest, exp: Experiment) -> Run | None:
    """The run a "run again with changes" form starts from (``?from=<id>``, then a hidden field)."""
    value = request.POST.get("from") if request.method == "POST" else request.GET.get("from")
    try:
        return services.parent_run(exp.slug, value)
    except Run.DoesNotExist:
        raise Http404("no such run") from None


@require_safe
@user_required
def history(request: HttpRequest) -> HttpResponse:
    filters = HistoryFilterForm(request.GET or None, staff=is_staff(request.user))
    runs = filters.runs() if filters.is_bound else Run.objects.select_related("user", "host")
    page = Paginator(runs, 50).get_page(request.GET.get("page"))
    return render(request, "sysops/history.html", {"page": page, "filters": filters})


@require_safe
@user_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    return _run_page(request, get_object_or_404(Run.objects.select_related("host"), pk=run_id))


def run_page_for_socket(scope: dict[str, Any], run: Run) -> str:
    """The run page as a GET of it from the browser behind websocket ``scope`` would get it:
    its user and session (channels' auth middleware put them in the scope), its cookies, the
    CSRF token its forms need from its CSRF cookie (the middleware's own reading of it). The
    form's socket sends it with the run it queued: the page needs no request of its own."""
    path = run.get_absolute_url()
    http_scope = {**scope, "type": "http", "method": "GET", "path": path, "query_string": b""}
    request = ASGIRequest(http_scope, io.BytesIO())
    request.user = scope.get("user")
    request.session = scope.get("session")
    CsrfViewMiddleware(lambda request: HttpResponse()).process_request(request)
    return _run_page(request, run).content.decode()


def _run_page(request: HttpRequest, run: Run, *, status: int = 200) -> HttpResponse:
    context = selectors.run_context(run)
    context["sandbox"] = selectors.sandbox_report()
    context["can_cancel"] = permissions.can_cancel(request.user, run.user_id)
    context["compare_candidates"] = comparison.candidates(run)
    if run.parent_id is not None and run.parent is not None:
        context["changes"] = comparison.param_changes(run.parent, run)
        context["parent_compare_ids"] = comparison.ids_text([run.parent, run])
    if run.trace_mode != Run.TraceMode.OFF:
        context["trace_help"] = errnos.help_tables()
        context["trace_categories"] = CATEGORIES
    return render(request, "sysops/run.html", context, status=status)


@require_POST
@user_required
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run, pk=run_id)
    if not permissions.can_cancel(request.user, run.user_id):
        return HttpResponseForbidden(
            "Only the person who started this run, or staff, may cancel it."
        )
    run = services.run_cancel(run=run, by=request.user)
    return redirect(run)


@require_POST
@user_required
def run_again(request: HttpRequest, run_id: int) -> HttpResponse:
    received_ns = stages.now_ns()
    old = get_object_or_404(Run, pk=run_id)
    exp = registry.get(old.experiment)
    if exp is None:
        raise Http404("that experiment no longer exists")
    queued = services.queue_form(
        exp,
        exp.form_data(old.params, old.trace_mode),
        user=request.user,
        client_addr=client_address(request),
        parent=old,
        submission=request.POST.get("submission", ""),
        received_ns=received_ns,
        hosts=[old.pinned_host],  # again where it ran (any host if it was not pinned)
    )
    return _queued(request, exp, queued, parent=old)


@require_safe
@user_required
def run_timeline(request: HttpRequest, run_id: int) -> HttpResponse:
    """The stored trace as timeline slices, at most ``MAX_SLICES`` of them, for the
    window ``start``..``end`` (seconds after the trace's first event; default: all of it)."""
    run = get_object_or_404(Run, pk=run_id)
    window: dict[str, float | None] = {}
    for name in ("start", "end"):
        text = request.GET.get(name)
        try:
            window[name] = float(text) if text else None
        except ValueError:
            window[name] = math.nan
        if window[name] is not None and not math.isfinite(window[name]):
            return HttpResponseBadRequest(f"{name} must be a number of seconds")
    return JsonResponse(selectors.trace_calls(run).window(window["start"], window["end"]))


@require_safe
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
