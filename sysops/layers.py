"""The embedded mode's channel layer: channels' in-memory layer without a deep copy per
receiver.

channels' ``InMemoryChannelLayer.send`` deep-copies every message for every channel of a group:
a batch of a few thousand samples sent to 100 viewers was copied 100 times on the server's one
event loop (bench/viewers.py: the page took seconds to load, the server's memory grew by
hundreds of MiB). Our consumers only read the messages they get, so each channel gets a shallow
copy of the one message instead. Capacity and ChannelFull are as in channels.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class SharedMessageLayer(InMemoryChannelLayer):
    async def send(self, channel: str, message: dict[str, Any]) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        assert "__asgi_channel__" not in message
        queue = self.channels.setdefault(channel, asyncio.Queue(maxsize=self.get_capacity(channel)))
        try:
            queue.put_nowait((time.time() + self.expiry, dict(message)))
        except asyncio.QueueFull:
            raise ChannelFull(channel) from None
