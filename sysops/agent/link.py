"""How a runner hands its live batches to the agent: JSON lines over the unix socket the agent
listens on, after one line that says which run this is.

The database is the record, not this link: a batch the agent cannot take (it is gone, or too
slow to read) is dropped and the run goes on. The runner connects again at most once a second,
so an agent that starts again (the web server restarted) adopts the run and its viewers get the
rest live, after a snapshot.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.db import connection

RECONNECT_INTERVAL_S = 1.0
# A batch the agent has not taken in this long is dropped: a stalled server never stalls a run.
SEND_TIMEOUT_S = 2.0


def hello_line(run_id: int) -> bytes:
    """Which run this is, by which process, recorded in which database (an agent of another
    install or of the tests must not adopt it)."""
    hello = {"run": run_id, "pid": os.getpid(), "database": database_name()}
    return json.dumps(hello).encode() + b"\n"


def database_name() -> str:
    return str(connection.settings_dict["NAME"])


class AgentLink:
    def __init__(self, path: Path, run_id: int) -> None:
        self.path, self.run_id = Path(path), run_id
        self._sock: socket.socket | None = None
        self._last_attempt_s = -RECONNECT_INTERVAL_S
        self._lost = False
        # Told (in words for the run's log) when the link is lost and when it is back.
        self.note: Callable[[str], None] = lambda message: None

    def connect(self) -> bool:
        """Connect now if not connected; False when the agent is not there (yet)."""
        if self._sock is not None:
            return True
        self._last_attempt_s = time.monotonic()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(SEND_TIMEOUT_S)
        try:
            sock.connect(str(self.path))
            sock.sendall(hello_line(self.run_id))
        except OSError:
            sock.close()
            return False
        self._sock = sock
        if self._lost:
            self._lost = False
            self.note("the web server is back: live updates resumed")
        return True

    def publish(self, group: str, message: dict[str, Any]) -> None:
        if self._sock is None:
            if time.monotonic() - self._last_attempt_s < RECONNECT_INTERVAL_S:
                return
            if not self.connect():
                return
        assert self._sock is not None
        line = json.dumps({"group": group, "message": message}).encode() + b"\n"
        try:
            self._sock.sendall(line)
        except OSError:  # EPIPE, ECONNRESET, a timeout: the agent is gone or stuck
            self._drop()

    def _drop(self) -> None:
        assert self._sock is not None
        self._sock.close()
        self._sock = None
        self._last_attempt_s = time.monotonic()
        if not self._lost:
            self._lost = True
            self.note(
                "the web server stopped during the run (its agent is gone); the run goes on "
                "and is recorded, and live updates resume when the server is back"
            )

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
