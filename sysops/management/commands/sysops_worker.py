"""``manage.py sysops_worker``: the old name of ``run_agent``, kept so existing deployments and
scripts keep working. It runs the agent, not a worker (the worker is what runs in a sandbox)."""

from sysops.management.commands.run_agent import Command  # noqa: F401
