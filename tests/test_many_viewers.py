"""Many viewers of one run: every viewer gets every batch, in order; a cap on viewers per run;
a viewer that lost batches on the way is brought back to the complete state."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from playground.asgi import application
from sysops.consumers import CLOSE_TOO_MANY_VIEWERS, viewer_count
from sysops.models import Run
from tests.test_consumers import ORIGIN, make_running_run, runner_flush

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

VIEWERS = 100
BATCHES = 20


@pytest.fixture(autouse=True)
def no_embedded_agent(settings):
    settings.SYSOPS_EMBEDDED_AGENT = False


async def _viewer(run_id: int) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=[ORIGIN])
    connected, _ = await ws.connect()
    assert connected
    return ws


async def _samples_until(ws: WebsocketCommunicator, last_seq: int) -> list[list]:
    """The samples of every JSON frame this viewer gets, in order, up to batch ``last_seq``."""
    samples: list[list] = []
    while True:
        text = await ws.receive_from(timeout=30)
        if not text.startswith("{"):
            continue  # an HTML fragment
        frame = json.loads(text)
        if frame["kind"] in ("snapshot", "samples"):
            if frame["kind"] == "snapshot":
                samples = list(frame["samples"])
            else:
                samples += frame["samples"]
            if frame["seq"] >= last_seq:
                return samples


async def test_a_hundred_viewers_each_get_the_same_complete_sequence():
    run = await sync_to_async(make_running_run)()
    viewers = [await _viewer(run.pk) for _ in range(VIEWERS)]
    assert viewer_count(run.pk) == VIEWERS
    expected = [["python", 0, 90.0], ["native", 0, 60.0], ["python", 1, 91.0]]
    for n in range(BATCHES):
        batch = [["native", n + 10, float(n)], ["python", n + 10, float(n) + 0.5]]
        expected += batch
        await sync_to_async(runner_flush)(run.pk, batch, 0.5)
    last_seq = 2 + BATCHES
    got = await asyncio.gather(*(_samples_until(ws, last_seq) for ws in viewers))
    assert all(samples == expected for samples in got)
    for ws in viewers:
        await ws.disconnect()
    assert viewer_count(run.pk) == 0


async def test_viewers_beyond_the_cap_are_told_and_closed(settings):
    settings.SYSOPS_MAX_VIEWERS_PER_RUN = 2
    run = await sync_to_async(make_running_run)()
    first, second = await _viewer(run.pk), await _viewer(run.pk)
    third = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=[ORIGIN])
    await third.connect()
    notice = await third.receive_from()
    assert 'id="run-notice"' in notice and "Too many people are watching" in notice
    assert (await third.receive_output())["code"] == CLOSE_TOO_MANY_VIEWERS
    await first.disconnect()
    fourth = await _viewer(run.pk)
    assert 'id="run-status"' in await fourth.receive_from()
    await second.disconnect()
    await fourth.disconnect()


async def test_a_viewer_that_missed_batches_gets_a_fresh_snapshot():
    run = await sync_to_async(make_running_run)()
    ws = await _viewer(run.pk)
    await _samples_until(ws, 2)
    # Batch 3 reaches the viewer; batch 4 never does (as when a full channel drops it), and
    # batch 5 arrives: the viewer is one behind, so it gets the stored state instead.
    await sync_to_async(runner_flush)(run.pk, [["native", 5, 1.0]], 0.5)
    await ws.receive_from()  # batch 3's HTML
    await ws.receive_from()  # batch 3's samples
    await sync_to_async(Run.objects.filter(pk=run.pk).update)(last_seq=4)
    await sync_to_async(runner_flush)(run.pk, [["native", 6, 2.0]], 0.5)
    frames = [await ws.receive_from() for _ in range(2)]
    snapshot = json.loads(frames[1])
    assert snapshot["kind"] == "snapshot" and snapshot["seq"] == 5
    assert snapshot["samples"][-2:] == [["native", 5, 1.0], ["native", 6, 2.0]]
    await ws.disconnect()
