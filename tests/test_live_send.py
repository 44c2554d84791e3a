"""A live message to a channel layer that is down (Redis stopped) is dropped, logged once, and
never raises: the database is the record, so neither a run nor a request fails for it."""

import logging
import socket

import pytest
from channels.layers import channel_layers
from django.test import override_settings

from sysops import live


def nothing_listening_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: connecting is refused


@pytest.fixture
def dead_redis_layer():
    url = f"redis://127.0.0.1:{nothing_listening_port()}/0"
    layers = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [url]}}
    }
    with override_settings(CHANNEL_LAYERS=layers):
        channel_layers.backends.clear()
        live._layer.down, live._layer.retry_at = False, 0.0
        yield
    channel_layers.backends.clear()
    live._layer.down, live._layer.retry_at = False, 0.0


def test_it_drops_messages_while_the_layer_is_down_and_says_so_once(dead_redis_layer, caplog):
    caplog.set_level(logging.WARNING, logger="sysops.live")
    for run_id in range(5):
        live.publish(live.run_group(run_id), {"type": "run.refresh", "run": run_id})
    live.run_status_changed(7)
    warnings = [r.getMessage() for r in caplog.records if r.name == "sysops.live"]
    assert len(warnings) == 1
    assert warnings[0].startswith("channel layer unreachable (ConnectionError")
