"""Fuzzing the worker's event lines: whatever arrives, the runner's reading of it (parse,
validate, record, flush) never raises, and every page that shows the run renders."""

import json
import math

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysops.agent.events import EVENT_TYPES, HOST_FIELDS
from sysops.agent.recorder import RunRecorder
from sysops.agent.runner import _on_event_line, _PassState
from sysops.consumers import RunConsumer
from sysops.models import Run

pytestmark = pytest.mark.django_db

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# A row's ``detail`` may name a panel template that draws it (a packet diagram, say).
details = (
    st.fixed_dictionaries(
        {"panel": st.sampled_from(["ip_packets", "nope", "../x"])},
        optional={"packets": json_values, "title": json_values, "rows": json_values},
    )
    | json_values
)
row_like = st.fixed_dictionaries(
    {},
    optional={"metric": st.text(max_size=8) | json_values, "detail": details},
).flatmap(
    lambda fixed: st.dictionaries(
        st.sampled_from(["value", "unit", "note", "dist", "layer", "ratio_to_native", "x_y"])
        | st.text(max_size=6),
        json_values,
        max_size=5,
    ).map(lambda rest: {**rest, **fixed})
)
host_like = st.dictionaries(
    st.sampled_from(sorted(HOST_FIELDS)) | st.text(max_size=6), json_values, max_size=6
)
events = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(EVENT_TYPES)) | st.text(max_size=6)},
    optional={
        "t": json_scalars,
        "host": host_like | json_values,
        "rows": st.lists(row_like | json_values, max_size=4) | json_values,
        "value": json_values,
        "series": json_values,
        "x": json_scalars,
        "y": json_scalars,
        "name": json_values,
        "message": json_values,
        "level": st.sampled_from(["info", "warning", "error", "debug"]) | json_values,
        "work_ns": json_scalars,
    },
)


def encode(event):
    return json.dumps(event, allow_nan=True).encode()


lines = st.lists(
    events.map(encode)
    | st.binary(max_size=64)
    | st.integers(min_value=1, max_value=5000).map(lambda n: b"[" * n + b"]" * n),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=lines)
def test_any_event_lines_leave_a_run_that_renders(
    client, django_capture_on_commit_callbacks, lines
):
    run = Run.objects.create(
        experiment="hostile", params={"case": "sleep"}, status=Run.Status.RUNNING
    )
    published = []
    recorder = RunRecorder(run, lambda group, message: published.append(message))
    state = _PassState(recorder, "", (0.0, 1.0))

    with django_capture_on_commit_callbacks(execute=True):
        for line in lines:
            _on_event_line(state, line)
            recorder.flush(force=True)
        recorder.finish(Run.Status.SUCCEEDED, "completed")

    run.refresh_from_db()
    assert all(isinstance(row, dict) and isinstance(row["metric"], str) for row in run.results)
    assert math.isfinite(run.progress)
    assert client.get(f"/runs/{run.pk}/").status_code == 200
    assert client.get("/").status_code == 200
    assert client.get("/runs/").status_code == 200
    # What a live viewer is sent, rendered as the consumer renders it.
    viewer = LiveViewer(run.pk)
    for message in published:
        if message.get("type") == "run.batch":
            async_to_sync(RunConsumer.run_batch)(viewer, message)
    assert viewer.frames


class LiveViewer:
    """Stands in for a websocket consumer: run_batch renders into ``frames``."""

    def __init__(self, run_id):
        self.run_id, self.seq, self.frames = run_id, 0, []

    async def send(self, text_data):
        self.frames.append(text_data)
