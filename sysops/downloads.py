"""Trace downloads: strace text, NDJSON, Perfetto (Chrome Trace Event JSON), summary CSV.

Streamed a stored chunk at a time from a thread, so a 200k-event trace neither sits whole in
memory nor blocks the server's event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, StreamingHttpResponse

from sysops import permissions, selectors
from sysops.models import Run
from sysops.tracing import export

_DONE = object()


def _summary_csv(run: Run) -> Callable[[Iterable[dict[str, Any]]], Iterator[str]]:
    # The summary the recorder stored covers every stored event: no need to read them again.
    return lambda events: export.summary_csv(run.trace.get("summary") or {})


def _perfetto(run: Run) -> Callable[[Iterable[dict[str, Any]]], Iterator[str]]:
    return lambda events: export.to_perfetto(events, run_label=f"run {run.pk} ({run.experiment})")


FORMATS: dict[str, tuple[str, str, Callable[[Run], Callable[..., Iterator[str]]]]] = {
    # name: (file suffix, content type, exporter for a run)
    "strace": ("strace.txt", "text/plain; charset=utf-8", lambda run: export.to_strace_text),
    "ndjson": ("ndjson", "application/x-ndjson", lambda run: export.to_ndjson),
    "perfetto": ("perfetto.json", "application/json", _perfetto),
    "summary": ("summary.csv", "text/csv; charset=utf-8", _summary_csv),
}


async def trace_download(request: HttpRequest, run_id: int, fmt: str) -> StreamingHttpResponse:
    user = await request.auser()
    if not permissions.can_use(user):
        raise Http404("sign in to download traces")
    run = await Run.objects.filter(pk=run_id).afirst()
    if run is None or fmt not in FORMATS or not run.trace.get("events"):
        raise Http404("no such trace")
    suffix, content_type, exporter = FORMATS[fmt]
    export_run = exporter(run)
    response = StreamingHttpResponse(
        _in_thread(lambda: export_run(selectors.trace_events(run))),
        content_type=content_type,
    )
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.{suffix}"'
    return response


async def _in_thread(make_chunks: Callable[[], Iterator[str]]) -> AsyncIterator[str]:
    """Build the exporter and pull every chunk in a thread: exporters may read ahead, and all
    database reads must stay off the event loop."""
    chunks = await sync_to_async(lambda: iter(make_chunks()), thread_sensitive=True)()
    step = sync_to_async(lambda: next(chunks, _DONE), thread_sensitive=True)
    while (chunk := await step()) is not _DONE:
        yield chunk
