"""Trace downloads: strace text, NDJSON, Perfetto (Chrome Trace Event JSON), summary CSV.

Streamed a stored chunk at a time from a thread, so a million-event trace neither sits whole in
memory nor blocks the server's event loop; gzip-compressed on the fly, in that thread, when the
browser accepts it (trace text shrinks about tenfold, and a download is bound by its bytes).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.http import Http404, HttpRequest, StreamingHttpResponse
from django.utils.cache import patch_vary_headers

from sysops import permissions, selectors
from sysops.models import Run
from sysops.tracing import export

_DONE = object()
# Level 1 compresses strace text about tenfold at a few hundred MB/s; higher levels gain a
# little size for several times the CPU (bench/trace_download.py).
GZIP_LEVEL = 1
GZIP_CHUNK_BYTES = 64 * 1024
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip header and trailer around the deflate stream


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
    gzipped = accepts_gzip(request)

    def chunks() -> Iterator[str | bytes]:
        texts = export_run(selectors.trace_events(run))
        return gzip_stream(texts) if gzipped else texts

    response = StreamingHttpResponse(_in_thread(chunks), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.{suffix}"'
    if gzipped:
        response["Content-Encoding"] = "gzip"
    patch_vary_headers(response, ("Accept-Encoding",))
    return response


def accepts_gzip(request: HttpRequest) -> bool:
    """Whether Accept-Encoding lists gzip (or ``*``) without refusing it with ``q=0``."""
    for item in request.headers.get("Accept-Encoding", "").split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in ("gzip", "*"):
            continue
        quality = params.strip().removeprefix("q=").strip() if params else "1"
        try:
            return float(quality) > 0
        except ValueError:
            return False
    return False


def gzip_stream(texts: Iterable[str]) -> Iterator[bytes]:
    """One gzip member, compressed as the text arrives, in pieces of at least GZIP_CHUNK_BYTES."""
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, _GZIP_WBITS)
    pending: list[bytes] = []
    size = 0
    for text in texts:
        out = compressor.compress(text.encode())
        if out:
            pending.append(out)
            size += len(out)
            if size >= GZIP_CHUNK_BYTES:
                yield b"".join(pending)
                pending.clear()
                size = 0
    pending.append(compressor.flush())
    yield b"".join(pending)


async def _in_thread(
    make_chunks: Callable[[], Iterator[str | bytes]],
) -> AsyncIterator[str | bytes]:
    """Build the exporter and pull every chunk in a thread: exporters may read ahead, and all
    database reads must stay off the event loop."""
    chunks = await sync_to_async(lambda: iter(make_chunks()), thread_sensitive=True)()
    step = sync_to_async(lambda: next(chunks, _DONE), thread_sensitive=True)
    while (chunk := await step()) is not _DONE:
        yield chunk
