"""The web server with its embedded agent started with it: daphne, plus the agent on daphne's
own event loop as soon as that loop runs. (daphne has no ASGI lifespan, and an agent started at
the first request would leave queued runs, and runs left running by a crash, waiting for a
visitor.) ``make run`` uses it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

ASGI_APPLICATION = "playground.asgi:application"


class Command(BaseCommand):
    help = "Serve the app with daphne and start the embedded agent at once."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-b", "--bind", default="127.0.0.1", help="address to listen on")
        parser.add_argument("-p", "--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        from daphne.cli import CommandLineInterface
        from daphne.server import Server  # installs the asyncio reactor

        class AgentStartingServer(Server):
            def run(self) -> None:
                from twisted.internet import reactor

                from sysops.agent.agent import ensure_embedded_agent

                # Called from the reactor, on daphne's running asyncio loop.
                reactor.callLater(0, ensure_embedded_agent)
                super().run()

        cli = CommandLineInterface()
        cli.server_class = AgentStartingServer
        cli.run(["-b", options["bind"], "-p", str(options["port"]), ASGI_APPLICATION])
