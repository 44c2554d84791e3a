"""Entry point of a runner process: ``python -m sysops.agent.runner_process <run_id>``.

Django is set up before anything imports the models; the agent finds runners by this module name.
"""

import argparse
import os

import django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_id", type=int)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
    django.setup()
    from sysops.agent.runner import serve

    serve(args.run_id)


if __name__ == "__main__":
    main()
