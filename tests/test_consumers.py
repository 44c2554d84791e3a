"""Websocket consumers against the real ASGI application and the real channel layer."""

import json
import re
import socket
from dataclasses import fields

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.middleware.csrf import _unmask_cipher_token

from playground.asgi import application
from sysops import stages
from sysops.agent.recorder import RunRecorder
from sysops.batch import RunBatch
from sysops.models import Run, SampleChunk
from sysops.tracing.parse import parse_text

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]
ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture(autouse=True)
def no_embedded_agent(settings):
    # These tests play the runner themselves; no agent may claim their runs.
    settings.SYSOPS_EMBEDDED_AGENT = False


def make_running_run():
    run = Run.objects.create(
        experiment="syscall-cost",
        params={"call": "getppid", "layers": ["python", "native"]},
        status=Run.Status.RUNNING,
        progress=0.25,
        progress_message="rep 2/8",
        last_seq=2,
    )
    SampleChunk.objects.create(run=run, seq=1, samples=[["python", 0, 90.0], ["native", 0, 60.0]])
    SampleChunk.objects.create(run=run, seq=2, samples=[["python", 1, 91.0]])
    return run


def runner_flush(run_id, samples, progress):
    """What a runner does: persist a batch, then publish it after the commit."""
    layer = get_channel_layer()
    recorder = RunRecorder(
        Run.objects.get(pk=run_id), lambda g, m: async_to_sync(layer.group_send)(g, m)
    )
    for series, x, y in samples:
        recorder.on_event({"type": "sample", "series": series, "x": x, "y": y})
    recorder.on_event({"type": "progress", "value": progress, "message": "rep 3/8"})
    recorder.flush(force=True)


async def connect(path, origin=ORIGIN):
    communicator = WebsocketCommunicator(application, path, headers=[origin])
    connected, _ = await communicator.connect()
    return communicator, connected


async def test_it_gives_a_late_viewer_the_state_so_far_then_live_batches():
    run = await sync_to_async(make_running_run)()
    ws, connected = await connect(f"/ws/runs/{run.pk}/")
    assert connected

    html = await ws.receive_from()
    assert 'id="run-status"' in html and 'data-status="running"' in html
    assert "rep 2/8" in html
    snapshot = json.loads(await ws.receive_from())
    assert snapshot == {
        "kind": "snapshot",
        "seq": 2,
        "samples": [["python", 0, 90.0], ["native", 0, 60.0], ["python", 1, 91.0]],
    }

    # A batch the snapshot already holds (a late copy of seq 2) is not shown twice.
    stale = RunBatch(
        run=run.pk,
        seq=2,
        status="running",
        status_changed=False,
        reason="",
        unsandboxed=False,
        unbounded=False,
        progress=0.25,
        progress_message="rep 2/8",
        phase="",
        samples=[["python", 1, 91.0]],
        logs=[],
        results=None,
        host=None,
        trace=None,
    )
    await get_channel_layer().group_send(f"run-{run.pk}", stale.rendered().to_message())
    await sync_to_async(runner_flush)(run.pk, [["native", 1, 61.0]], 0.375)

    html = await ws.receive_from()
    assert "rep 3/8" in html and "38%" in html
    frame = json.loads(await ws.receive_from())
    assert frame == {"kind": "samples", "seq": 3, "samples": [["native", 1, 61.0]]}
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_it_rejects_a_foreign_origin():
    run = await sync_to_async(make_running_run)()
    ws, connected = await connect(f"/ws/runs/{run.pk}/", origin=(b"origin", b"http://evil.example"))
    assert not connected
    ws, connected = await connect("/ws/runs/", origin=(b"origin", b"http://evil.example"))
    assert not connected


async def test_it_closes_for_a_run_that_does_not_exist():
    ws, connected = await connect("/ws/runs/999999/")
    assert connected  # accepted, then closed with a reason code once the lookup fails
    assert (await ws.receive_output())["code"] == 4404


async def test_it_requires_a_sign_in_off_loopback(settings):
    settings.SYSOPS_REQUIRE_LOGIN = True
    run = await sync_to_async(make_running_run)()
    ws, connected = await connect(f"/ws/runs/{run.pk}/")
    assert not connected


async def test_it_tells_dashboards_when_a_run_changes():
    run = await sync_to_async(make_running_run)()
    ws, connected = await connect("/ws/runs/")
    assert connected
    await sync_to_async(
        lambda: RunRecorder(
            Run.objects.get(pk=run.pk),
            lambda g, m: async_to_sync(get_channel_layer().group_send)(g, m),
        ).finish(Run.Status.SUCCEEDED, "completed")
    )()
    html = await ws.receive_from()
    assert f'id="run-row-{run.pk}"' in html
    assert "succeeded" in html
    await ws.disconnect()


def play_a_whole_run(run_id):
    """Everything a batch can carry, through the real recorder: a first batch mid-run, then the
    final one."""
    layer = get_channel_layer()
    recorder = RunRecorder(
        Run.objects.get(pk=run_id), lambda g, m: async_to_sync(layer.group_send)(g, m)
    )
    for event in (
        {"type": "hello", "host": {"hostname": "box-7", "kernel": {"release": "6.99-test"}}},
        {"type": "phase", "name": "phase-omega"},
        {"type": "progress", "value": 0.5, "message": "halfway-marker"},
        {"type": "sample", "series": "native", "x": 7, "y": 42.5},
        {"type": "log", "level": "warning", "message": "log-marker"},
        {"type": "result", "rows": [{"metric": "metric-marker", "value": 1, "unit": "ns"}]},
    ):
        recorder.on_event(event)
    recorder.set_trace(status="tracing", reason="trace-marker")
    recorder.on_trace(parse_text("123 1700000000.000001 getppid() = 1 <0.000002>\n"))
    recorder.flush(force=True)
    recorder.finish(Run.Status.FAILED, "reason-marker")


async def test_every_batch_field_reaches_the_viewer():
    run = await sync_to_async(make_running_run)()
    await sync_to_async(Run.objects.filter(pk=run.pk).update)(unsandboxed=True, unbounded=True)
    ws, connected = await connect(f"/ws/runs/{run.pk}/")
    assert connected
    await ws.receive_from()  # the snapshot's HTML
    await ws.receive_from()  # and its samples
    await sync_to_async(play_a_whole_run)(run.pk)
    received = []
    while not await ws.receive_nothing(timeout=0.5):
        received.append(await ws.receive_from())
    html = "".join(m for m in received if not m.startswith("{"))
    frames = [json.loads(m) for m in received if m.startswith("{")]
    traces = [f for f in frames if f["kind"] == "trace"]

    checks = {
        "run": lambda: f"/runs/{run.pk}/" in html or 'id="run-status"' in html,
        "seq": lambda: [f["seq"] for f in frames if f["kind"] == "samples"] == [3],
        "status": lambda: 'data-status="failed"' in html,
        # The table goes out once, with the final status, not with every row that arrives.
        "status_changed": lambda: html.count('id="run-results"') == 1,
        "reason": lambda: "reason-marker" in html,
        "unsandboxed": lambda: "UNSANDBOXED" in html,
        "unbounded": lambda: "UNBOUNDED" in html,
        "progress": lambda: "50%" in html,
        "progress_message": lambda: "halfway-marker" in html,
        "phase": lambda: "phase-omega" in html,
        "samples": lambda: ["native", 7, 42.5] in frames[0]["samples"],
        "logs": lambda: "log-marker" in html,
        "results": lambda: "metric-marker" in html,
        # The hostname is the runner's (the sandbox has its own), the rest the worker's.
        "host": lambda: socket.gethostname() in html and "6.99-test" in html,
        "trace": lambda: (
            traces
            and traces[0]["state"]["reason"] == "trace-marker"
            and traces[0]["events"][0]["name"] == "getppid"
        ),
        "html": lambda: 'id="run-progress"' in html,
    }
    assert set(checks) == {f.name for f in fields(RunBatch)}, "a batch field without a check"
    missing = [name for name, check in checks.items() if not check()]
    assert missing == []
    await ws.disconnect()


async def test_the_page_reports_its_first_frame_once_and_only_soon_after_the_post():
    now_ns = stages.now_ns()
    fresh = await sync_to_async(Run.objects.create)(
        experiment="syscall-cost", params={}, stages={"post": now_ns - 100_000_000}
    )
    old = await sync_to_async(Run.objects.create)(
        experiment="syscall-cost", params={}, stages={"post": now_ns - 3600 * 10**9}
    )
    for run in (fresh, old):
        ws = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=[ORIGIN])
        assert (await ws.connect())[0]
        await ws.receive_from()  # the snapshot's HTML
        await ws.receive_from()  # and its samples
        await ws.send_to(text_data=json.dumps({"kind": "first_frame"}))
        await ws.send_to(text_data="not json")
        await ws.send_to(text_data=json.dumps({"kind": "first_frame"}))
        assert await ws.receive_nothing(timeout=0.3)
        await ws.disconnect()

    await sync_to_async(fresh.refresh_from_db)()
    await sync_to_async(old.refresh_from_db)()
    assert 0 < fresh.stages["first_frame"] - fresh.stages["post"] < 60 * 10**9
    assert "first_frame" not in old.stages  # a visit an hour later is not the run's start


# --- the socket a form page opens, which watches the run its form queues ----------------------


async def test_a_form_pages_socket_watches_the_run_it_names_and_gets_its_batches():
    run = await sync_to_async(make_running_run)()
    ws, connected = await connect("/ws/watch/")
    assert connected
    assert await ws.receive_nothing(timeout=0.2)  # nothing until it names a run

    await ws.send_to(text_data=json.dumps({"kind": "watch", "run": run.pk}))
    html = await ws.receive_from()
    assert 'data-status="running"' in html and "rep 2/8" in html
    snapshot = json.loads(await ws.receive_from())
    assert snapshot["kind"] == "snapshot" and snapshot["seq"] == 2 and len(snapshot["samples"]) == 3

    await sync_to_async(runner_flush)(run.pk, [("native", 1, 61.0)], 0.5)
    assert 'id="run-progress"' in await ws.receive_from()
    batch = json.loads(await ws.receive_from())
    assert batch == {"kind": "samples", "seq": 3, "samples": [["native", 1, 61.0]]}

    # A second "watch" does not move the socket to another run.
    other = await sync_to_async(make_running_run)()
    await ws.send_to(text_data=json.dumps({"kind": "watch", "run": other.pk}))
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


async def test_a_watch_snapshot_leaves_out_the_fragments_the_page_already_shows():
    run = await sync_to_async(Run.objects.create)(experiment="syscall-cost", params={})
    ws, _ = await connect("/ws/watch/")
    # The page was rendered from the run as stored: no batch yet, queued.
    message = {"kind": "watch", "run": run.pk, "seq": 0, "status": "queued"}
    await ws.send_to(text_data=json.dumps(message))
    assert json.loads(await ws.receive_from()) == {"kind": "snapshot", "seq": 0, "samples": []}
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()

    # Claimed since, with no batch yet and nothing to say: the first batch (or the agent's
    # refresh, if none comes soon) brings the status, not a second swap of every fragment.
    await sync_to_async(Run.objects.filter(pk=run.pk).update)(status=Run.Status.RUNNING)
    ws, _ = await connect("/ws/watch/")
    await ws.send_to(text_data=json.dumps(message))
    assert json.loads(await ws.receive_from())["kind"] == "snapshot"
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()

    # Waiting for the CPUs (a timing run), ended, or with a batch stored: the page is told.
    changes = [
        {"progress_message": "waiting for the CPUs: it measures timings, so it starts when #1 end"},
        {"status": Run.Status.CANCELLED, "progress_message": ""},
        {"status": Run.Status.RUNNING, "last_seq": 1},
    ]
    for change in changes:
        await sync_to_async(Run.objects.filter(pk=run.pk).update)(**change)
        ws, _ = await connect("/ws/watch/")
        await ws.send_to(text_data=json.dumps(message))
        assert 'id="run-status"' in await ws.receive_from(), change
        assert json.loads(await ws.receive_from())["kind"] == "snapshot"
        await ws.disconnect()


@pytest.mark.parametrize("run", [0, -1, "1", True, 1 << 70, None])
async def test_a_watch_of_no_such_run_closes_the_socket(run):
    ws, _ = await connect("/ws/watch/")
    await ws.send_to(text_data=json.dumps({"kind": "watch", "run": run}))
    assert (await ws.receive_output())["code"] == 4404


async def test_a_watch_of_a_run_deleted_meanwhile_closes_the_socket():
    ws, _ = await connect("/ws/watch/")
    await ws.send_to(text_data=json.dumps({"kind": "watch", "run": 987654}))
    assert (await ws.receive_output())["code"] == 4404


async def test_the_watch_socket_checks_origin_and_sign_in(settings):
    ws, connected = await connect("/ws/watch/", origin=(b"origin", b"http://evil.example"))
    assert not connected
    settings.SYSOPS_REQUIRE_LOGIN = True
    ws, connected = await connect("/ws/watch/")
    assert not connected


def form_fields(**values):
    fields = {"call": "getppid", "iterations": "1000", "repetitions": "5", "warmup": "0"}
    fields.update(values)
    pairs = [[name, value] for name, value in fields.items()]
    return pairs + [["layers", "python"], ["layers", "native"]]


async def test_a_form_sent_over_the_watch_socket_is_queued_and_watched_at_once():
    secret = "s3cretCSRFs3cretCSRFs3cretCSRF12"  # the browser's CSRF cookie
    ws = WebsocketCommunicator(
        application, "/ws/watch/", headers=[ORIGIN, (b"cookie", f"csrftoken={secret}".encode())]
    )
    assert (await ws.connect())[0]
    fields = form_fields(submission="s" * 24)
    await ws.send_to(
        text_data=json.dumps({"kind": "submit", "experiment": "syscall-cost", "fields": fields})
    )
    answer = json.loads(await ws.receive_from(timeout=30))  # (the first page compiles templates)
    run = await sync_to_async(Run.objects.get)()
    assert {k: answer[k] for k in ("kind", "run", "url")} == {
        "kind": "queued",
        "run": run.pk,
        "url": f"/runs/{run.pk}/",
    }
    assert run.params["layers"] == ["python", "native"] and run.params["iterations"] == 1000
    assert "post" in run.stages
    # The run page comes with it, as a GET would have it: the run, queued, and forms whose
    # CSRF token goes with the browser's cookie.
    page = answer["page"]
    assert f'ws-connect="/ws/runs/{run.pk}/"' in page and 'data-status="queued"' in page
    tokens = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert tokens and {_unmask_cipher_token(token) for token in tokens} == {secret}
    # Watching already: the snapshot (no fragments: the page about to be fetched shows the
    # queued run), then the run's batches.
    assert json.loads(await ws.receive_from()) == {"kind": "snapshot", "seq": 0, "samples": []}
    await sync_to_async(runner_flush)(run.pk, [("native", 0, 61.0)], 0.2)
    assert 'id="run-progress"' in await ws.receive_from()
    assert json.loads(await ws.receive_from())["samples"] == [["native", 0, 61.0]]
    await ws.disconnect()

    # The same form again (a double click, a resend over HTTP): the same run, no second one.
    ws, _ = await connect("/ws/watch/")
    await ws.send_to(
        text_data=json.dumps({"kind": "submit", "experiment": "syscall-cost", "fields": fields})
    )
    assert json.loads(await ws.receive_from())["run"] == run.pk
    assert await sync_to_async(Run.objects.count)() == 1
    await ws.disconnect()


@pytest.mark.parametrize(
    "message",
    [
        {"kind": "submit", "experiment": "syscall-cost", "fields": form_fields(iterations="5")},
        {"kind": "submit", "experiment": "no-such", "fields": form_fields()},
        {"kind": "submit", "experiment": "syscall-cost", "fields": "call=getppid"},
        {"kind": "submit", "experiment": "syscall-cost", "fields": [["call", 1]]},
        {"kind": "submit", "experiment": "syscall-cost", "fields": [["x", "y"]] * 201},
        {"kind": "submit", "experiment": "syscall-cost", "fields": [["x", "y" * 70_000]]},
        {"kind": "submit", "experiment": "syscall-cost", "fields": form_fields(**{"from": "99"})},
        {"kind": "submit", "experiment": 3, "fields": form_fields()},
    ],
)
async def test_a_form_the_socket_cannot_queue_is_refused_and_nothing_is_created(message):
    ws, _ = await connect("/ws/watch/")
    await ws.send_to(text_data=json.dumps(message))
    assert json.loads(await ws.receive_from()) == {"kind": "refused"}
    assert not await sync_to_async(Run.objects.exists)()
    # One form per socket: the page posts a refused one over HTTP, which says why.
    await ws.send_to(text_data=json.dumps({**message, "fields": form_fields()}))
    assert await ws.receive_nothing(timeout=0.3)
    assert not await sync_to_async(Run.objects.exists)()
    await ws.disconnect()


async def test_the_socket_keeps_the_quotas_of_the_form(settings):
    settings.SYSOPS_QUEUED_PER_USER = 1
    for expected in ("queued", "refused"):
        ws, _ = await connect("/ws/watch/")
        message = {"kind": "submit", "experiment": "syscall-cost", "fields": form_fields()}
        await ws.send_to(text_data=json.dumps(message))
        assert json.loads(await ws.receive_from())["kind"] == expected
        await ws.disconnect()
    assert await sync_to_async(Run.objects.count)() == 1
