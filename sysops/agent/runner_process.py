"""Entry point of a runner process: ``python -m sysops.agent.runner_process <run_id>``, or
``--wait`` to load everything first and then read the run id from stdin (the agent keeps one such
runner ready). Django is set up before anything imports the models; the agent finds runners by
this module name.
"""

import argparse
import os
import sys

import django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_id", type=int, nargs="?")
    parser.add_argument("--wait", action="store_true", help="read the run id from stdin")
    args = parser.parse_args()
    if (args.run_id is None) != args.wait:
        parser.error("give a run id or --wait")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    django.setup()
    from sysops import sandbox, stages
    from sysops.agent.runner import serve

    run_id = args.run_id
    if args.wait:
        sandbox.cached_host_report()  # the host probe, ahead of the run too
        line = sys.stdin.readline()
        if not line.strip():
            return  # the agent went away before it needed this runner
        run_id = int(line)
    serve(run_id, ready_ns=stages.now_ns())


if __name__ == "__main__":
    main()
