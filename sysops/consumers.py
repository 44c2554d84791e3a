"""Websocket consumers. HTML frames are swapped by id (htmx ws); JSON frames feed the charts.

A viewer first joins the run's group, then gets a snapshot read from the database; live batches
numbered at or below the snapshot are already in it and are dropped, so nothing is shown twice
and nothing committed is missed. A batch that skips a number means this viewer lost one (the
channel layer drops messages to a full channel): it gets a fresh snapshot instead.

Each server process keeps at most SYSOPS_MAX_VIEWERS_PER_RUN live viewers per run; the next one
is told so and closed.
"""

from __future__ import annotations

import functools
import json
from collections import Counter, OrderedDict
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import QueryDict
from django.template.loader import render_to_string
from django.urls import reverse

from sysops import live, permissions, selectors, services, stages, views
from sysops.batch import RunBatch
from sysops.experiments import registry
from sysops.live import RUNS_GROUP, run_group
from sysops.models import Run
from sysops.tracing.render import live_record, live_trace_state

# Close codes (4000-4999 are the application's): htmx's ws extension does not reconnect on them.
CLOSE_FORBIDDEN = 4403
CLOSE_NO_SUCH_RUN = 4404
CLOSE_TOO_MANY_VIEWERS = 4429
# How long a form's socket waits for its run to be handed to a runner before it renders the
# run page anyway (the run may be queued behind others): see _queue_form.
START_WAIT_S = 0.05

# Snapshots and the dashboard's list are read and rendered on the executor's threads, not on
# the one thread that runs the pages' views: a hundred viewers connecting at once must not
# queue every page behind their snapshots.
off_the_views_thread = functools.partial(database_sync_to_async, thread_sensitive=False)

# Live viewers per run in this process (the consumers of one server share its event loop).
_viewers: Counter[int] = Counter()


def viewer_count(run_id: int) -> int:
    return _viewers[run_id]


# The JSON frames of the latest batches, serialised once for all the viewers in this process.
# The key tells batches apart beyond their run id and seq, which another database (as in tests)
# may use again: by what they hold, cheaply (a str caches its hash), without keeping it alive.
_frame_texts: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()
FRAME_TEXTS_KEPT = 64


def frame_texts(batch: RunBatch) -> list[str]:
    last = repr(batch.samples[-1]) if batch.samples else ""
    key = (batch.run, batch.seq, hash(batch.html), len(batch.samples), last)
    texts = _frame_texts.get(key)
    if texts is None:
        texts = _frame_texts[key] = [json.dumps(frame) for frame in batch.frames()]
        if len(_frame_texts) > FRAME_TEXTS_KEPT:
            _frame_texts.popitem(last=False)
    return texts


class RunConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.run_id: int | None = None
        self.seq = 0
        self.counted = False
        self.reported = False
        self.submitted = False
        if not permissions.can_use(self.scope.get("user")):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        run_id = self.scope["url_route"]["kwargs"].get("run_id")
        if run_id is None:
            # /ws/watch/: opened with a form page, it queues the form's run ({"kind":
            # "submit"}) or is told which run the form queued ({"kind": "watch", "run": N}),
            # and watches it: that run's page needs no connection of its own
            # (static/sysops/submit.js).
            await self.accept()
            return
        await self._watch(int(run_id), accepted=False)

    async def _watch(
        self, run_id: int, *, accepted: bool, shown: tuple[int, str] | None = None
    ) -> None:
        """Join the run's group, then send what it has stored. ``shown``: the batch number and
        status of the run as the page shows it (a page just rendered by the form's post)."""
        self.run_id = run_id
        self.group = run_group(run_id)
        cap = settings.SYSOPS_MAX_VIEWERS_PER_RUN
        if _viewers[run_id] >= cap:
            if not accepted:
                await self.accept()
            await self.send(
                text_data=render_to_string("sysops/_viewer_limit.html", {"viewers_max": cap})
            )
            await self.close(code=CLOSE_TOO_MANY_VIEWERS)
            return
        _viewers[run_id] += 1
        self.counted = True
        await self.channel_layer.group_add(self.group, self.channel_name)
        if not accepted:
            await self.accept()
        if not await self._send_snapshot(shown):
            await self.close(code=CLOSE_NO_SUCH_RUN)

    async def disconnect(self, code: int) -> None:
        if self.counted:
            self.counted = False
            _viewers[self.run_id] -= 1
            if _viewers[self.run_id] <= 0:
                del _viewers[self.run_id]
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page says which run to watch (a socket opened with a form page), or when it
        first showed live data: the last stage of the run's start."""
        received_ns = stages.now_ns()
        try:
            report = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(report, dict):
            return
        if report.get("kind") == "submit" and self.run_id is None and not self.submitted:
            self.submitted = True  # one form per socket: a refused one is posted over HTTP
            await self._submit(report, received_ns)
        elif report.get("kind") == "watch" and self.run_id is None:
            run_id, seq, status = report.get("run"), report.get("seq"), report.get("status")
            shown = (seq, status) if _is_id(seq) and isinstance(status, str) else None
            if _is_id(run_id) and run_id > 0:
                await self._watch(run_id, accepted=True, shown=shown)
            else:
                await self.close(code=CLOSE_NO_SUCH_RUN)
        elif report.get("kind") == "first_frame" and self.run_id is not None and not self.reported:
            self.reported = True  # one report per page: a chatty client costs nothing more
            await database_sync_to_async(_first_frame)(self.run_id, received_ns)

    async def _submit(self, report: dict[str, Any], received_ns: int) -> None:
        """Queue the run of the form the page sends (services.queue_form, as its HTTP post
        would) and watch it: the socket is the new run's before the page has asked for it.
        Anything but one queued run is answered "refused" (the page then posts the form over
        HTTP and shows what the server says there) or "redirect" (several runs: compare)."""
        data = _form_data(report.get("fields"))
        exp = (
            registry.get(report.get("experiment"))
            if isinstance(report.get("experiment"), str)
            else None
        )
        if data is None or exp is None:
            await self.send(text_data=json.dumps({"kind": "refused"}))
            return
        queued, page = await database_sync_to_async(_queue_form)(exp, data, self.scope, received_ns)
        if queued is None or not queued.runs:
            await self.send(text_data=json.dumps({"kind": "refused"}))
        elif len(queued.runs) > 1:
            ids = ",".join(str(run.pk) for run in queued.runs)
            await self.send(
                text_data=json.dumps({"kind": "redirect", "url": reverse("compare", args=[ids])})
            )
        else:
            run = queued.runs[0]
            reply = {"kind": "queued", "run": run.pk, "url": run.get_absolute_url(), "page": page}
            await self.send(text_data=json.dumps(reply))
            # The page shows the run as it was rendered: no fragments for that here.
            await self._watch(run.pk, accepted=True, shown=(run.last_seq, run.status))

    async def _send_snapshot(self, shown: tuple[int, str] | None = None) -> bool:
        rendered = await self._render_snapshot(shown)
        if rendered is None:
            return False
        html, seq, samples, trace = rendered
        self.seq = seq
        if html:
            await self.send(text_data=html)
        await self.send(text_data=json.dumps({"kind": "snapshot", "seq": seq, "samples": samples}))
        if trace is not None:
            await self.send(text_data=json.dumps(trace))
        return True

    @off_the_views_thread
    def _render_snapshot(
        self, shown: tuple[int, str] | None = None
    ) -> tuple[str, int, list[list[Any]], dict[str, Any] | None] | None:
        """The run's fragments (none when the page ``shown`` them already: no batch stored yet,
        the same status), its chart samples and its trace tail, as stored."""
        assert self.run_id is not None
        snap = selectors.run_snapshot(self.run_id)
        if snap is None:
            return None
        run = snap.run
        html = ""
        if not _shows(shown, snap.seq, run):
            html = render_to_string(
                "sysops/_run_live.html",
                {"run": run, "logs": snap.logs, "hidden_logs": snap.hidden_logs, "full": True},
            )
        trace = None
        if run.trace_mode != Run.TraceMode.OFF:
            trace = {
                "kind": "trace",
                "snapshot": True,
                "state": live_trace_state(run.trace),
                "events": [live_record(e) for e in snap.trace_tail],
                "summary": run.trace.get("summary"),
            }
        return html, snap.seq, snap.samples, trace

    async def run_batch(self, event: dict[str, Any]) -> None:
        batch = RunBatch.from_message(event)
        if batch.seq <= self.seq:
            return
        if batch.seq > self.seq + 1:
            # Batches in between were lost on the way: the database has them all.
            await self._send_snapshot()
            return
        self.seq = batch.seq
        await self.send(text_data=batch.html)
        for text in frame_texts(batch):
            await self.send(text_data=text)

    async def run_refresh(self, event: dict[str, Any]) -> None:
        """A change made outside a runner's batches (claimed, cancelled while queued, recovered)."""
        await self._send_snapshot()


# A form sent over the socket: at most this many fields and characters (the HTTP post of the
# same form is capped by the request body limit).
FORM_FIELDS_MAX = 200
FORM_MAX_CHARS = 64 * 1024


def _form_data(fields: Any) -> QueryDict | None:
    """The [[name, value], ...] pairs a page sent, as a form's data; None if malformed."""
    if not isinstance(fields, list) or len(fields) > FORM_FIELDS_MAX:
        return None
    data = QueryDict(mutable=True)
    chars = 0
    for pair in fields:
        if not isinstance(pair, list) or len(pair) != 2:
            return None
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            return None
        chars += len(name) + len(value)
        if chars > FORM_MAX_CHARS:
            return None
        data.appendlist(name, value)
    return data


def _client_address(scope: dict[str, Any]) -> str | None:
    return views.ip_address_or_none((scope.get("client") or ("",))[0])


def _queue_form(
    exp: Any, data: QueryDict, scope: dict[str, Any], received_ns: int
) -> tuple[services.FormQueued | None, str]:
    """What came of the form, and the page of the one run it queued ("" otherwise); None when
    the run it starts from (its "from" field) is not one of this experiment's."""
    try:
        parent = services.parent_run(exp.slug, data.get("from"))
    except Run.DoesNotExist:
        return None, ""
    queued = services.queue_form(
        exp,
        data,
        user=scope.get("user"),
        client_addr=_client_address(scope),
        parent=parent,
        submission=data.get("submission", ""),
        received_ns=received_ns,
    )
    if len(queued.runs) != 1:
        return queued, ""
    # Rendered once this process's agent has handed the run to a runner (or at most
    # START_WAIT_S later): on this busy process the claim goes first, and the page shows the
    # run as it is then. It is still in place before the run's first batch.
    run = queued.runs[0]
    agent = live.local_agent()
    if agent is not None:
        agent.wait_started(run.pk, START_WAIT_S)
        run.refresh_from_db()
    return queued, views.run_page_for_socket(scope, run)


def _shows(shown: tuple[int, str] | None, seq: int, run: Run) -> bool:
    """Whether a page that shows the run at ``shown`` (batch, status) shows it as stored. A page
    rendered queued still does once the run is claimed with no batch yet and nothing to say (a
    timing run waiting for the CPUs says so): the run's first batch brings the new status, and
    the agent refreshes its viewers if none comes within ANNOUNCE_DELAY_S. Sending the
    fragments again cost the browser a swap (8-20 ms, measured) while the first figure was on
    its way."""
    if shown is None or seq != shown[0]:
        return False
    if shown[1] == run.status:
        return True
    return (
        seq == 0
        and shown[1] == Run.Status.QUEUED
        and run.status == Run.Status.RUNNING
        and not run.progress_message
    )


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 62


# A page opened later than this after the POST is a visit, not the run's first viewer.
FIRST_FRAME_WINDOW_S = 60


def _first_frame(run_id: int, received_ns: int) -> None:
    posted_ns = Run.objects.filter(pk=run_id).values_list("stages__post", flat=True).first()
    if isinstance(posted_ns, int) and 0 <= received_ns - posted_ns <= FIRST_FRAME_WINDOW_S * 1e9:
        stages.mark(run_id, {"first_frame": received_ns})


class DashboardConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        if not permissions.can_use(self.scope.get("user")):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        await self.channel_layer.group_add(RUNS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(RUNS_GROUP, self.channel_name)

    async def runs_changed(self, event: dict[str, Any]) -> None:
        await self.send(text_data=await self._render())

    @off_the_views_thread
    def _render(self) -> str:
        return render_to_string("sysops/_recent_runs.html", {"runs": selectors.recent_runs()})
