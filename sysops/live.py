"""Live messages to browsers, through the channel layer.

Groups: ``run-<id>`` carries one run's batches; ``runs`` tells dashboards that a run changed.
In embedded mode the in-memory layer lives on the web server's event loop, so messages from
sync code (views, threads) are handed to the agent running on that loop; in scaled mode any
process may publish to Redis directly.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

RUNS_GROUP = "runs"


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def publish(group: str, message: dict[str, Any]) -> None:
    from sysops.agent.agent import embedded_agent

    agent = embedded_agent()
    if agent is not None:
        agent.publish_threadsafe(group, message)
        return
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, message)


def runs_changed(run_id: int) -> dict[str, Any]:
    """For dashboards: the run's row changed."""
    return {"type": "runs.changed", "run": run_id}


def status_messages(run_id: int) -> list[tuple[str, dict[str, Any]]]:
    """A change made outside a runner's batches (queued, claimed, cancelled while queued,
    recovered): dashboards redraw the row, run pages re-read the run."""
    return [
        (RUNS_GROUP, runs_changed(run_id)),
        (run_group(run_id), {"type": "run.refresh", "run": run_id}),
    ]


def run_status_changed(run_id: int) -> None:
    for group, message in status_messages(run_id):
        publish(group, message)


def run_queued(run_id: int) -> None:
    from sysops.agent.agent import embedded_agent

    run_status_changed(run_id)
    agent = embedded_agent()
    if agent is not None:
        agent.wake_threadsafe()
