"""Views of runs side by side, and of bundles: export a run or a comparison, import one."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from sysops import bundle, comparison
from sysops.comparison import ComparisonError
from sysops.models import Run
from sysops.views import user_required

# How often a comparison of runs still queued or running reloads itself.
PENDING_REFRESH_S = 5
# Room for a multipart upload's boundaries and headers around the bundle itself.
MULTIPART_OVERHEAD_BYTES = 64 << 10


def refused(request: HttpRequest, title: str, message: str, status: int) -> HttpResponse:
    return render(
        request, "sysops/refused.html", {"title": title, "message": message}, status=status
    )


def named_runs(
    view: Callable[[HttpRequest, list[Run]], HttpResponse],
) -> Callable[..., HttpResponse]:
    """A view of the runs a permalink names (``ids``), or the page saying why there are none."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, ids: str) -> HttpResponse:
        try:
            runs = comparison.load_runs(comparison.parse_ids(ids))
        except ComparisonError as exc:
            return refused(request, "These runs cannot be compared", exc.message, exc.status)
        return view(request, runs)

    return wrapped


@require_GET
@user_required
@named_runs
def compare(request: HttpRequest, runs: list[Run]) -> HttpResponse:
    result = comparison.compare(runs)
    drawn = comparison.overlaid_samples(runs)
    chart_data = {"charts": result.charts, "samples": drawn.samples}
    return render(
        request,
        "sysops/compare.html",
        {
            "comparison": result,
            "chart_data": chart_data,
            "columns": list(zip(runs, result.colors, strict=True)),
            "refresh_s": PENDING_REFRESH_S,
            "thinned": drawn.thinned,
        },
    )


@require_GET
@user_required
def compare_pick(request: HttpRequest) -> HttpResponse:
    """The history's and the run page's checkboxes (``?run=12&run=13``) → the permalink, the
    earliest run first: the baseline the others are measured against."""
    picked = list(dict.fromkeys(request.GET.getlist("run")))
    picked.sort(key=lambda value: (len(value), value))  # numerically, for digit strings
    try:
        ids = comparison.parse_ids(",".join(picked))
    except ComparisonError as exc:
        return refused(request, "These runs cannot be compared", exc.message, exc.status)
    return redirect("compare", comparison.ids_text(ids))


def _with_logs(request: HttpRequest) -> bool:
    """Logs are in a bundle unless ``?logs=0`` leaves them out (they can be long)."""
    return request.GET.get("logs") != "0"


def _bundle_response(content: dict, filename: str) -> HttpResponse:
    response = HttpResponse(
        json.dumps(content, separators=(",", ":"), allow_nan=False),
        content_type="application/json",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@require_GET
@user_required
def run_bundle(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.select_related("host"), pk=run_id)
    if not run.is_terminal:
        return refused(request, "Not finished", f"Run {run.pk} has not finished yet.", 400)
    content = bundle.export([run], source=request.get_host(), logs=_with_logs(request))
    return _bundle_response(content, f"sysops-run-{run.pk}.json")


@require_GET
@user_required
@named_runs
def compare_bundle(request: HttpRequest, runs: list[Run]) -> HttpResponse:
    pending = [str(run.pk) for run in runs if not run.is_terminal]
    if pending:
        message = f"Run {', '.join(pending)} has not finished yet: export finished runs."
        return refused(request, "Not finished", message, 400)
    content = bundle.export(runs, source=request.get_host(), logs=_with_logs(request))
    return _bundle_response(content, f"sysops-compare-{'-'.join(str(r.pk) for r in runs)}.json")


@require_http_methods(["GET", "POST"])
@user_required
def bundle_import(request: HttpRequest) -> HttpResponse:
    cap = settings.SYSOPS_BUNDLE_MAX_BYTES
    error, status = "", 200
    if request.method == "POST":
        # Refused on its declared length, before anything parses the multipart body.
        too_big = int(request.META.get("CONTENT_LENGTH") or 0) > cap + MULTIPART_OVERHEAD_BYTES
        upload = None if too_big else request.FILES.get("bundle")
        if too_big or (upload is not None and upload.size > cap):
            error, status = f"The bundle is over {cap:,} bytes (SYSOPS_BUNDLE_MAX_BYTES).", 413
        elif upload is None:
            error, status = "Choose a bundle file (.json) to import.", 400
        else:
            try:
                runs = bundle.import_bundle(upload.read(), user=request.user, origin=upload.name)
            except bundle.BundleError as exc:
                error, status = f"The bundle was refused: {exc}", 400
            else:
                if len(runs) == 1:
                    return redirect(runs[0])
                return redirect(reverse("compare", args=[comparison.ids_text(runs)]))
    return render(
        request,
        "sysops/import.html",
        {"error": error, "max_bytes": cap},
        status=status,
    )
