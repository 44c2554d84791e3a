"""A runner's link to its agent: a missing or vanished agent never ends the run; the link comes
back by itself when an agent listens again, and the run's log says both."""

import asyncio
import json
import socket
import time

import pytest

from sysops.agent import link as link_module
from sysops.agent.link import AgentLink

pytestmark = pytest.mark.django_db


def listen(path):
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    return server


def read_lines(conn, n):
    data = b""
    conn.settimeout(5)
    while data.count(b"\n") < n:
        data += conn.recv(65536)
    return [json.loads(line) for line in data.splitlines()]


def test_it_survives_its_agent_and_comes_back_to_the_next(tmp_path, monkeypatch):
    monkeypatch.setattr(link_module, "RECONNECT_INTERVAL_S", 0.0)
    path = tmp_path / "agent.sock"
    notes = []
    first = listen(path)
    link = AgentLink(path, 7)
    link.note = notes.append
    assert link.connect()
    conn, _ = first.accept()
    link.publish("run-7", {"seq": 1})
    hello, batch = read_lines(conn, 2)
    assert (hello["run"], batch) == (7, {"group": "run-7", "message": {"seq": 1}})

    conn.close()  # the agent dies
    first.close()
    path.unlink()
    for seq in range(2, 50):  # a broken pipe (EPIPE) or a refused connection, never an error
        link.publish("run-7", {"seq": seq})
    assert notes == [notes[0]] and "the web server stopped during the run" in notes[0]

    second = listen(path)  # the next agent
    link.publish("run-7", {"seq": 50})
    conn, _ = second.accept()
    hello, batch = read_lines(conn, 2)
    assert hello["run"] == 7 and batch["message"] == {"seq": 50}
    assert notes[-1] == "the web server is back: live updates resumed"
    link.close()
    second.close()


def test_without_an_agent_it_drops_batches_and_tries_again_at_most_once_a_second(tmp_path):
    link = AgentLink(tmp_path / "nobody.sock", 7)
    started = time.monotonic()
    for seq in range(1000):
        link.publish("run-7", {"seq": seq})
    assert time.monotonic() - started < 1.0


@pytest.mark.django_db(transaction=True)  # the agent writes from its own thread
def test_an_agent_that_stops_removes_its_own_socket_but_not_the_installs(settings, tmp_path):
    from sysops.agent.agent import Agent

    settings.SYSOPS_AGENT_SOCKET = str(tmp_path / "agent.sock")

    async def scenario():
        first, second = Agent(max_running=1), Agent(max_running=1)
        await first._listen()
        await second._listen()  # the install's socket is taken: one of its own
        assert first.socket_path == tmp_path / "agent.sock"
        assert second.socket_path != first.socket_path and second.socket_path.exists()
        await second.stop()
        assert not second.socket_path.exists()
        await first.stop()
        assert first.socket_path.exists()  # the next agent may be listening there already

    asyncio.run(scenario())
