"""Every experiment form has a host field: any host (the default), a live host by name, or all
live hosts (one run each, one group, shown as a comparison). A gone or unknown host is an error
next to the field, and no run."""

import pytest

from sysops.agent.agent import Agent
from sysops.models import Run
from sysops.sandbox import cached_host_report
from tests.test_forms import GOOD_COST

pytestmark = pytest.mark.django_db


def register(settings, name: str) -> Agent:
    """An agent of host ``name`` as it registers when it starts (it is not run here)."""
    settings.SYSOPS_HOST_NAME = name
    agent = Agent(max_running=1)
    agent.register(cached_host_report())
    return agent


@pytest.fixture
def hosts(settings):
    live = [register(settings, "host-a"), register(settings, "host-b")]
    register(settings, "host-gone").unregister()
    return live


def post(client, data):
    return client.post("/experiments/syscall-cost/", data)


def test_the_form_offers_any_host_each_live_host_and_all_hosts(client, hosts):
    page = client.get("/experiments/syscall-cost/").content.decode()
    select = page[page.index('name="host"') : page.index("</select>", page.index('name="host"'))]
    assert '<option value="" selected>any host</option>' in select
    assert '<option value="host-a">host-a</option>' in select
    assert '<option value="host-b">host-b</option>' in select
    assert 'value="*"' in select
    assert "host-gone" not in select


def test_any_host_is_the_default_and_pins_nothing(client, hosts):
    response = post(client, GOOD_COST)
    run = Run.objects.get()
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    assert run.pinned_host == "" and run.group == ""
    assert "host" not in run.params


def test_a_named_live_host_pins_the_run(client, hosts):
    post(client, {**GOOD_COST, "host": "host-b"})
    run = Run.objects.get()
    assert run.pinned_host == "host-b"


def test_all_hosts_makes_one_run_per_live_host_in_one_group_and_compares_them(client, hosts):
    response = post(client, {**GOOD_COST, "host": "*"})
    runs = list(Run.objects.order_by("id"))
    assert sorted(run.pinned_host for run in runs) == ["host-a", "host-b"]
    assert runs[0].group and runs[0].group == runs[1].group
    assert runs[0].params == runs[1].params
    assert response.status_code == 302
    assert response.url == f"/compare/{runs[0].pk},{runs[1].pk}/"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("host-gone", "Host &#x27;host-gone&#x27; is gone (last heartbeat "),
        ("<b>nowhere</b>", "No agent runs on a host named &#x27;&lt;b&gt;nowhere&lt;/b&gt;&#x27;."),
    ],
)
def test_a_gone_or_unknown_host_is_an_error_next_to_the_field(client, hosts, host, message):
    response = post(client, {**GOOD_COST, "host": host})
    assert response.status_code == 400
    page = response.content.decode()
    error = page[page.index('id="error-host"') :]
    assert message in error[:300]
    assert "<b>nowhere" not in page
    assert not Run.objects.exists()


def test_all_hosts_with_no_live_host_is_an_error(client, settings):
    register(settings, "host-gone").unregister()
    response = post(client, {**GOOD_COST, "host": "*"})
    assert response.status_code == 400
    assert "No host is alive right now" in response.content.decode()
    assert not Run.objects.exists()


def test_a_run_page_says_where_it_is_pinned_and_links_its_group(client, hosts):
    post(client, {**GOOD_COST, "host": "*"})
    first, second = Run.objects.order_by("id")
    page = client.get(first.get_absolute_url()).content.decode()
    assert f"Pinned to host {first.pinned_host}." in page
    assert f'<a href="/compare/{first.pk},{second.pk}/">compare them</a>' in page


def test_a_run_queued_for_a_host_that_went_says_it_waits(client, settings, hosts):
    post(client, {**GOOD_COST, "host": "host-a"})
    run = Run.objects.get()
    hosts[0].unregister()
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Pinned to host host-a, where no agent is alive: it waits until one" in page
