"""Live messages to browsers, through the channel layer.

Groups: ``run-<id>`` carries one run's batches; ``runs`` tells dashboards that a run changed.
In embedded mode the in-memory layer lives on the web server's event loop, so messages from
sync code (views, threads) are handed to the agent running on that loop; in scaled mode any
process may publish to Redis directly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

RUNS_GROUP = "runs"
# A live message the layer (Redis) has not taken in this long is given up: the run goes on.
LAYER_TIMEOUT_S = 2.0
# After a failed send, messages are dropped without trying for this long, so that a dead Redis
# costs a fast run one timeout per interval rather than one per batch.
LAYER_RETRY_S = 1.0

log = logging.getLogger(__name__)


class LocalAgent(Protocol):
    """The agent running on this process's web server loop (embedded mode)."""

    def is_running(self) -> bool: ...
    def publish_threadsafe(self, group: str, message: dict[str, Any]) -> None: ...
    def wake_threadsafe(self) -> None: ...
    def expect_start(self, run_id: int) -> None: ...
    def wait_started(self, run_id: int, timeout_s: float) -> None: ...


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


class _LayerState:
    """Whether this process's last send to the layer failed, and until when not to try."""

    down = False
    retry_at = 0.0


_layer = _LayerState()


async def send(group: str, message: dict[str, Any]) -> bool:
    """Hand one live message to the channel layer; False if it was dropped. Never raises: the
    database is the record, so a layer that is down (Redis stopped) costs viewers their live
    updates until they reconnect and read the snapshot, never a run or a request. Logs once
    when the layer goes away and once when it is back."""
    layer = get_channel_layer()
    if layer is None:
        return False
    now = time.monotonic()
    if now < _layer.retry_at:
        return False
    try:
        await asyncio.wait_for(layer.group_send(group, message), LAYER_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - whatever the layer's client raises
        if not _layer.down:
            log.warning(
                "channel layer unreachable (%s: %s): live messages are dropped until it is "
                "back; runs go on and are recorded",
                type(exc).__name__,
                exc,
            )
        _layer.down, _layer.retry_at = True, now + LAYER_RETRY_S
        return False
    if _layer.down:
        log.warning("channel layer reachable again: live messages flow")
        _layer.down = False
    return True


def publish(group: str, message: dict[str, Any]) -> None:
    agent = local_agent()
    if agent is not None:
        agent.publish_threadsafe(group, message)
        return
    async_to_sync(send)(group, message)


def runs_changed(run_id: int) -> dict[str, Any]:
    """For dashboards: the run's row changed."""
    return {"type": "runs.changed", "run": run_id}


def status_messages(run_id: int) -> list[tuple[str, dict[str, Any]]]:
    """A change made outside a runner's batches (queued, claimed, cancelled while queued,
    recovered): dashboards redraw the row, run pages re-read the run."""
    return [(RUNS_GROUP, runs_changed(run_id)), (run_group(run_id), run_refresh(run_id))]


def run_refresh(run_id: int) -> dict[str, Any]:
    """The run's pages read it again (a snapshot)."""
    return {"type": "run.refresh", "run": run_id}


def run_status_changed(run_id: int) -> None:
    for group, message in status_messages(run_id):
        publish(group, message)


# Standalone agents (scaled mode) listen here for runs to claim.
AGENTS_GROUP = "sysops-agents"


def run_queued(run_id: int) -> None:
    # Dashboards list it; its own page has nothing to re-read yet (the socket that queued it
    # sent it a snapshot, a page loaded later reads it whole).
    publish(RUNS_GROUP, runs_changed(run_id))
    agent = local_agent()
    if agent is not None:
        agent.expect_start(run_id)
        agent.wake_threadsafe()
    elif settings.REDIS_URL:
        publish(AGENTS_GROUP, {"type": "run.queued", "run": run_id})
