"""Entry point of a runner process: ``python -m sysops.agent.runner_process <run_id>``, or
``--wait`` to load everything first and then read the run id from stdin (the agent keeps one such
runner ready). Django is set up before anything imports the models; the agent finds runners by
this module name.
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
        "--agent-socket", type=Path, help="publish to the agent listening on this unix socket"
    )
    args = parser.parse_args()
    if (args.run_id is None) != args.wait:
        parser.error("give a run id or --wait")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    from sysops.agent import warm

    django.setup()
    from sysops import sandbox, stages
    from sysops.agent.runner import serve
    from sysops.batch import warm_up_rendering

    if not args.wait:
        serve(args.run_id, ready_ns=stages.now_ns(), agent_socket=args.agent_socket)
        return
    # Told to stop while waiting: nothing to record, only the head start to throw away.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    sandbox.cached_host_report()  # the host probe, ahead of the run too
    warm_up_rendering()  # templates compiled ahead of the first batch
    prepared = warm.prepare()
    warm.low_priority(False)
    try:
        line = sys.stdin.readline()
        if not line.strip():
            return  # the agent went away before it needed this runner
        ready_ns = stages.now_ns()
        serve(int(line), ready_ns=ready_ns, agent_socket=args.agent_socket, prepared=prepared)
        prepared = None  # the run took it over
    finally:
        if prepared is not None:
            prepared.discard()


if __name__ == "__main__":
    main()
