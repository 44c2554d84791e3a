"""The agent on its own (scaled mode): claims queued runs and runs them until stopped."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from sysops.agent.agent import Agent


class Command(BaseCommand):
    help = "Run the agent standalone: claim queued runs, keep at most N running."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--max-running", type=int, default=None, help="default: cores")

    def handle(self, *args: Any, **options: Any) -> None:
        asyncio.run(self._serve(Agent(max_running=options["max_running"])))

    async def _serve(self, agent: Agent) -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        task = asyncio.create_task(agent.run_forever())
        self.stderr.write(f"agent {agent.agent_id}: claiming runs (max {agent.max_running})")
        await stopping.wait()
        self.stderr.write("stopping: runners record why they stopped")
        await agent.stop()
        task.cancel()
