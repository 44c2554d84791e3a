"""Entry point of a runner process: ``python -m sysops.agent.runner_process <run_id>``;
``--wait`` to load everything first and then read the run id from stdin (a spare runner); or
``--fork-server`` to load everything once and fork such spares on the agent's request
(sysops.agent.forkserver). Django is set up before anything imports the models; the agent finds
runners by this module name.
"""

import argparse
import os
import signal
import sys
from pathlib import Path

import django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_id", type=int, nargs="?")
    parser.add_argument("--wait", action="store_true", help="read the run id from stdin")
    parser.add_argument(
        "--fork-server", action="store_true", help="fork a waiting runner per request"
    )
    parser.add_argument("--control-fd", type=int, help="the fork server's socket to the agent")
    parser.add_argument(
        "--agent-socket", type=Path, help="publish to the agent listening on this unix socket"
    )
    args = parser.parse_args()
    if sum((args.run_id is not None, args.wait, args.fork_server)) != 1:
        parser.error("give a run id, --wait or --fork-server")
    if args.fork_server and args.control_fd is None:
        parser.error("--fork-server needs --control-fd")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    from sysops.agent import warm

    django.setup()
    from sysops import sandbox, stages
    from sysops.agent import forkserver
    from sysops.agent.runner import serve
    from sysops.batch import warm_up_rendering
    from sysops.sandbox import stage

    if args.run_id is not None:
        serve(args.run_id, ready_ns=stages.now_ns(), agent_socket=args.agent_socket)
        return
    sandbox.cached_host_report()  # the host probe, ahead of the run too
    stage.warm_up()  # the staged modules' bytecode, compiled once for every spare
    warm_up_rendering()  # templates compiled ahead of the first batch
    warm.warm_up_forms()  # each experiment's parameters validated once
    warm.warm_up_queries()  # and the ORM's first read of a run
    if args.fork_server:
        forkserver.serve_forks(args.control_fd, lambda: _spare(args.agent_socket))
    else:
        sys.exit(_spare(args.agent_socket))


def _spare(agent_socket: Path | None) -> int:
    """A spare runner's life: ready a sandbox, wait for the run id on stdin, run it."""
    from sysops import stages
    from sysops.agent import warm
    from sysops.agent.runner import serve

    # Told to stop while waiting: nothing to record, only the head start to throw away.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    warm.open_connection()
    prepared = warm.prepare()
    try:
        line = sys.stdin.readline()
        if not line.strip():
            return 0  # the agent went away before it needed this runner
        ready_ns = stages.now_ns()
        # (The agent set it too, but a spare still preparing may have changed it since.)
        warm.run_priority(0)
        warm.check_connection()
        serve(int(line), ready_ns=ready_ns, agent_socket=agent_socket, prepared=prepared)
        prepared = None  # the run took it over
    finally:
        if prepared is not None:
            prepared.discard()
    return 0


if __name__ == "__main__":
    main()
