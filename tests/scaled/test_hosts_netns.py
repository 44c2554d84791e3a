"""Workers on several hosts over a network: two agents in network namespaces of their own, with
different SYSOPS_HOST_NAMEs, reach PostgreSQL and Redis over veth addresses. A run pinned to a
host runs there, "all hosts" runs once on each, and a host that dies has its run finished as
failed by the other, and shows as gone."""

from __future__ import annotations

import contextlib
import http.cookiejar
import os
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings

from sysops.models import HostAgent, Run
from tests.helpers import netns
from tests.helpers.agents import EXPIRY_S, AgentProcess, start_agent, wait_registered
from tests.helpers.runs import wait_for
from tests.scaled.services import Stack

QUICK = {
    "call": "getppid",
    "layers": "native",
    "iterations": "1000",
    "repetitions": "5",
    "warmup": "0",
}
SLEEP_S = 40
SLEEPY = {"case": "sleep", "sleep_s": SLEEP_S, "path": "", "wall_s": 60, "cpu_s": 2}
HOSTS = ("host-a", "host-b")


def _cannot(reason: str) -> None:
    """Skip where this machine cannot make namespaces; under CI, where it must, fail."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"under CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def hosts(scaled_stack: Stack, scaled_db: str, settings) -> Iterator[dict[str, AgentProcess]]:
    """An agent per namespace, named HOSTS, connected over its veth; all removed after."""
    if os.geteuid() != 0:
        _cannot("network namespaces and veth pairs need root")
    settings.SYSOPS_AGENT_EXPIRY_S = EXPIRY_S
    postgres, redis = scaled_stack.services.postgres, scaled_stack.services.redis
    listening = (list(postgres.listen_addresses), list(redis.bind))
    agents: dict[str, AgentProcess] = {}
    with contextlib.ExitStack() as cleanup:
        try:
            spaces = cleanup.enter_context(netns.namespaces(len(HOSTS)))
        except subprocess.CalledProcessError as exc:
            _cannot(f"cannot make network namespaces here: {' '.join(exc.cmd)}: {exc.stderr}")
        try:
            for name, ns in zip(HOSTS, spaces, strict=True):
                postgres.listen_also(ns.root_address)
                redis.listen_also(ns.root_address)
                agents[name] = start_agent(
                    name,
                    postgres.url(scaled_stack.database, host=ns.root_address),
                    prefix=ns.prefix(cwd=django_settings.BASE_DIR),
                    env={"REDIS_URL": redis.url_at(ns.root_address)},
                )
            for name, ns in zip(HOSTS, spaces, strict=True):
                row = wait_registered(agents[name], using=scaled_db)
                assert ns.holds(int(row.agent_id.rpartition(":")[2])), f"{name} not in {ns.name}"
            yield agents
        finally:
            for agent in agents.values():
                agent.stop()
            # The servers outlive the namespaces: they stop listening on addresses soon gone.
            postgres.listen_addresses[:], redis.bind[:] = listening
            redis.command("CONFIG", "SET", "bind", " ".join(redis.bind))


class Browser:
    """Form posts to the web app as a browser makes them (CSRF cookie and token)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect()
        )

    def get(self, path: str) -> str:
        with self.opener.open(self.base_url + path, timeout=30) as response:
            return response.read().decode()

    def submit(self, path: str, fields: dict[str, str]) -> str:
        """POST the form at ``path``; where it redirects to."""
        page = self.get(path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, page[:500]
        data = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token[1]}).encode()
        try:
            self.opener.open(self.base_url + path, data=data, timeout=30)
        except urllib.error.HTTPError as redirect:
            assert redirect.code == 302, redirect.read().decode()[:2000]
            return redirect.headers["Location"]
        raise AssertionError(f"POST {path} did not redirect")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _run_id(location: str) -> int:
    match = re.fullmatch(r"/runs/(\d+)/", location)
    assert match, location
    return int(match[1])


def test_pinned_runs_run_on_their_host_and_all_hosts_runs_once_on_each(
    hosts, scaled_stack, scaled_db
):
    _, base_url = scaled_stack.start_web(SYSOPS_AGENT_EXPIRY_S=str(EXPIRY_S))
    browser = Browser(base_url)
    form = browser.get("/experiments/syscall-cost/")
    for name in HOSTS:
        assert f'<option value="{name}">{name}</option>' in form

    pinned = {
        name: _run_id(browser.submit("/experiments/syscall-cost/", {**QUICK, "host": name}))
        for name in HOSTS
    }
    compare = browser.submit("/experiments/syscall-cost/", {**QUICK, "host": "*"})
    match = re.fullmatch(r"/compare/(\d+),(\d+)/", compare)
    assert match, compare
    everywhere = [int(match[1]), int(match[2])]

    runs = Run.objects.using(scaled_db).select_related("host")
    for name, run_id in pinned.items():
        run = wait_for(runs.get(pk=run_id), lambda r: r.is_terminal)
        assert run.status == Run.Status.SUCCEEDED, run.reason
        assert run.pinned_host == name
        assert run.claimed_by.startswith(f"{name}:")
        assert run.host.fingerprint["hostname"] == name

    done = [wait_for(runs.get(pk=run_id), lambda r: r.is_terminal) for run_id in everywhere]
    assert [run.status for run in done] == [Run.Status.SUCCEEDED] * 2, [r.reason for r in done]
    assert sorted(run.pinned_host for run in done) == sorted(HOSTS)
    assert sorted(run.host.fingerprint["hostname"] for run in done) == sorted(HOSTS)
    assert done[0].group and done[0].group == done[1].group
    assert done[0].params == done[1].params

    dashboard = browser.get("/")
    for name in HOSTS:
        at = dashboard.index(f'<strong class="host-name">{name}</strong>')
        assert re.search(r"host-(alive|busy)", dashboard[at : at + 200])


def test_a_host_that_dies_has_its_run_failed_by_the_other_and_shows_gone(
    hosts, scaled_stack, scaled_db
):
    doomed, survivor = HOSTS
    run = Run.objects.using(scaled_db).create(
        experiment="hostile", params=SLEEPY, pinned_host=doomed
    )
    run = wait_for(run, lambda r: r.logs.filter(message__startswith="sandbox started").exists())
    assert run.claimed_by.startswith(f"{doomed}:")

    hosts[doomed].kill_host()
    killed_at = time.monotonic()
    run = wait_for(run, lambda r: r.is_terminal, timeout_s=SLEEP_S / 2)
    assert time.monotonic() - killed_at < SLEEP_S / 2  # not the probe ending on its own
    assert run.status == Run.Status.FAILED
    assert re.fullmatch(
        rf"the agent on host {doomed} stopped heartbeating at \S+ \S+ UTC; "
        "its run could not finish",
        run.reason,
    ), run.reason

    rows = HostAgent.objects.using(scaled_db)
    assert rows.get(name=doomed).state == HostAgent.State.GONE
    assert rows.get(name=survivor).state != HostAgent.State.GONE
    _, base_url = scaled_stack.start_web(SYSOPS_AGENT_EXPIRY_S=str(EXPIRY_S))
    dashboard = Browser(base_url).get("/")
    for name, state in ((doomed, "gone"), (survivor, "alive")):
        at = dashboard.index(f'<strong class="host-name">{name}</strong>')
        assert f"host-{state}" in dashboard[at : at + 200]
