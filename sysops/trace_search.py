"""The trace pane's search over every stored event of a run, a page at a time (JSON).

``GET /runs/<id>/trace-search/`` with any of ``name syscall category pid failed=1 harness=1 text
from to after limit`` answers ``{events, next, more, scanned, stored}``; ``from``/``to`` are
seconds since the trace's first event, as the pane shows them. Ask again with ``after=<next>``
for the following page.
"""

from __future__ import annotations

from django import forms
from django.http import Http404, HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_GET

from sysops import permissions, selectors
from sysops.models import Run
from sysops.tracing.categories import CATEGORIES
from sysops.tracing.render import live_record
from sysops.tracing.search import TEXT_MAX_CHARS, TraceQuery

PAGE_MAX_EVENTS = 500
_NAME_MAX_CHARS = 64


class TraceSearchForm(forms.Form):
    name = forms.CharField(required=False, max_length=_NAME_MAX_CHARS, strip=True)
    syscall = forms.CharField(required=False, max_length=_NAME_MAX_CHARS, strip=True)
    category = forms.ChoiceField(required=False, choices=[("", "")] + [(c, c) for c in CATEGORIES])
    pid = forms.IntegerField(required=False, min_value=0, max_value=2**31)
    failed = forms.BooleanField(required=False)
    harness = forms.BooleanField(required=False)
    text = forms.CharField(required=False, max_length=TEXT_MAX_CHARS, strip=False)
    # "from" and "to" are Python keywords: the form fields get other names (see _query_data).
    ts_from = forms.FloatField(required=False, min_value=0)
    ts_to = forms.FloatField(required=False, min_value=0)
    after = forms.IntegerField(required=False, min_value=0, max_value=2**62)
    limit = forms.IntegerField(required=False, min_value=1, max_value=PAGE_MAX_EVENTS)

    def query(self, t0: float | None) -> TraceQuery:
        data = self.cleaned_data
        base = t0 or 0.0
        return TraceQuery(
            name=data["name"],
            syscall=data["syscall"],
            category=data["category"],
            pid=data["pid"],
            failed=data["failed"],
            harness=data["harness"],
            text=data["text"],
            ts_from=None if data["ts_from"] is None else base + data["ts_from"],
            ts_to=None if data["ts_to"] is None else base + data["ts_to"],
        )


@require_GET
def trace_search(request: HttpRequest, run_id: int) -> JsonResponse:
    if not permissions.can_use(request.user):
        raise Http404("sign in to search traces")
    run = get_object_or_404(Run, pk=run_id)
    data = request.GET.copy()
    for outer, inner in (("from", "ts_from"), ("to", "ts_to")):
        if outer in data:
            data[inner] = data.pop(outer)[-1]
    form = TraceSearchForm(data)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    page = selectors.trace_search(
        run,
        form.query(run.trace.get("t0")),
        after=form.cleaned_data["after"] or 0,
        limit=form.cleaned_data["limit"] or selectors.TRACE_PAGE_SIZE,
    )
    return JsonResponse(
        {
            "events": [{**live_record(e), "index": i} for i, e in page.events],
            "next": page.next_index,
            "more": page.more,
            "scanned": page.scanned,
            "stored": page.stored,
        }
    )
