"""Live messages to browsers, through the channel layer.

Groups: ``run-<id>`` carries one run's batches; ``runs`` tells dashboards that a run changed.
In embedded mode the in-memory layer lives on the web server's event loop, so messages from
sync code (views, threads) are handed to the agent running on that loop; in scaled mode any
process may publish to Redis directly.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

RUNS_GROUP = "runs"


class LocalAgent(Protocol):
    """The agent running on this process's web server loop (embedded mode)."""

    def is_running(self) -> bool: ...
    def publish_threadsafe(self, group: str, message: dict[str, Any]) -> None: ...
    def wake_threadsafe(self) -> None: ...


# The agent registers itself here when it starts (the agent knows live, not the reverse), with
# the pid it started in: a forked child (a test server) has no agent of its own until it starts
# one.
_local: tuple[int, LocalAgent] | None = None


def register_local_agent(agent: LocalAgent) -> None:
    global _local
    _local = (os.getpid(), agent)


def local_agent() -> LocalAgent | None:
    """The agent running inside this process's web server, if any."""
    if _local is None or _local[0] != os.getpid() or not _local[1].is_running():
        return None
    return _local[1]


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def publish(group: str, message: dict[str, Any]) -> None:
    agent = local_agent()
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
    run_status_changed(run_id)
    agent = local_agent()
    if agent is not None:
        agent.wake_threadsafe()
