"""An imported run, seen live: its page's websocket gives a viewer the whole stored run, marked
imported, like a finished local run's."""

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from playground.asgi import application
from sysops import bundle
from sysops.models import Run, SampleChunk
from tests.helpers.small_runs import SYSCALL_COST_SMALL

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def no_embedded_agent(settings):
    # Nothing here is to be run; the agent need not start with the first connection.
    settings.SYSOPS_EMBEDDED_AGENT = False


def imported_run():
    run = Run.objects.create(
        experiment="syscall-cost", params=SYSCALL_COST_SMALL, status=Run.Status.SUCCEEDED
    )
    SampleChunk.objects.create(run=run, seq=1, samples=[["native", x, 50.0 + x] for x in range(5)])
    content = json.dumps(bundle.export([run], source="elsewhere")).encode()
    return bundle.import_bundle(content, user=None)[0]


async def test_a_viewer_of_an_imported_run_gets_all_of_it():
    run = await sync_to_async(imported_run)()
    communicator = WebsocketCommunicator(
        application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"http://127.0.0.1:8000")]
    )
    connected, _ = await communicator.connect()
    assert connected
    html = await communicator.receive_from()
    assert 'data-status="succeeded"' in html and ">imported</span>" in html
    snapshot = json.loads(await communicator.receive_from())
    assert snapshot["kind"] == "snapshot"
    assert snapshot["samples"] == [["native", x, 50.0 + x] for x in range(5)]
    await communicator.disconnect()
