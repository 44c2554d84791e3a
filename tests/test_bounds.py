"""Where the host cannot give a run its memory, pids and cpu cgroup, the run is refused with the
reason, on the dashboard and in the run; the development switch runs it marked UNBOUNDED."""

import pytest

from sysops import sandbox
from sysops.agent.runner import execute
from sysops.models import Run
from sysops.sandbox import cgroups, process

pytestmark = pytest.mark.django_db(transaction=True)

DETAIL = "cgroup v2 at /sys/fs/cgroup offers pids; no cgroup v1 memory, pids or cpu controller"
SLEEP = {"case": "sleep", "sleep_s": 0, "path": "", "wall_s": 20, "cpu_s": 2}


@pytest.fixture
def host_without_cgroups(monkeypatch):
    real = sandbox.cached_host_report()
    if not real.can_sandbox:
        pytest.skip(f"this host cannot sandbox: {real.reason}")
    checks = [c for c in real.checks if c.name != "cgroups"]
    report = sandbox.HostReport(
        True, real.reason, [*checks, sandbox.Check("cgroups", False, DETAIL)]
    )
    monkeypatch.setattr(sandbox, "cached_host_report", lambda: report)
    monkeypatch.setattr(process, "cached_host_report", lambda: report)
    support = cgroups.CgroupSupport(None, {}, DETAIL)
    monkeypatch.setattr(process, "cached_cgroup_support", lambda: support)


def run_hostile_sleep():
    run = Run.objects.create(experiment="hostile", params=SLEEP, status=Run.Status.RUNNING)
    return execute(run.pk, lambda group, message: None)


def test_a_run_without_its_cgroup_is_refused_with_the_reason(
    host_without_cgroups, client, settings
):
    settings.SYSOPS_ALLOW_UNBOUNDED = False

    run = run_hostile_sleep()

    assert run.status == Run.Status.FAILED
    assert run.reason == f"sandbox refused: no memory, pids and cpu cgroup for the run: {DETAIL}"
    assert run.results == []
    assert not run.unbounded
    dashboard = client.get("/").content.decode()
    assert f"Runs are refused: no memory, pids and cpu cgroup for the run: {DETAIL}" in dashboard
    assert (
        "sandbox refused: no memory, pids and cpu cgroup"
        in client.get(f"/runs/{run.pk}/").content.decode()
    )


def test_the_development_switch_runs_it_marked_unbounded(host_without_cgroups, client, settings):
    settings.SYSOPS_ALLOW_UNBOUNDED = True

    run = run_hostile_sleep()

    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.unbounded
    assert run.logs.filter(message__startswith=f"UNBOUNDED: {DETAIL}").exists()
    assert "UNBOUNDED</span>" in client.get(f"/runs/{run.pk}/").content.decode()
    assert f"UNBOUNDED runs (SYSOPS_ALLOW_UNBOUNDED): {DETAIL}" in client.get("/").content.decode()
