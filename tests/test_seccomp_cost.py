"""seccomp-cost through the runner in the real sandbox, and its form."""

import pytest

from sysops.agent.runner import execute
from sysops.models import Run

pytestmark = pytest.mark.django_db(transaction=True)
GOOD = {
    "shapes": ["linear", "allowlist"],
    "lengths": "16, 500",
    "call": "getppid",
    "defeat_cache": "on",
    "iterations": "5000",
    "repetitions": "3",
}


def test_it_measures_filters_inside_the_sandbox_without_ever_filtering_the_worker():
    run = Run.objects.create(
        experiment="seccomp-cost",
        params={
            "shapes": ["linear", "allowlist"],
            "lengths": [16, 500],
            "call": "getppid",
            "defeat_cache": True,
            "iterations": 5_000,
            "repetitions": 3,
        },
        status=Run.Status.RUNNING,
    )
    run = execute(run.pk, lambda group, message: None)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert not run.unsandboxed
    rows = {row["metric"]: row for row in run.results}
    # Inside, the worker already runs under the sandbox's own filter (bubblewrap installs it),
    # and still under exactly that one after every experiment filter came and went.
    filters = rows["filters attached to the worker"]
    assert filters["value"] >= 1
    assert f"{filters['value']} before the sweep and {filters['value']} after" in filters["note"]
    for shape in ("linear", "allowlist"):
        assert rows[f"{shape}: getppid with a 500-instruction filter"]["layer"] == "native"
        assert f"{shape}: ns added per instruction" in rows
    assert rows["kernel"]["value"]


def post(client, data):
    return client.post("/experiments/seccomp-cost/", data)


def test_the_form_queues_a_run_with_the_lengths_as_a_list(client):
    response = post(client, GOOD)
    assert response.status_code == 302
    assert Run.objects.get().params["lengths"] == [16, 500]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lengths", "16, abc", "whole numbers"),
        ("lengths", "4", "between 8 and 1000"),
        ("lengths", "16, 5000", "between 8 and 1000"),
        ("lengths", ", ".join(str(n) for n in range(10, 130, 10)), "Give 1 to 10 different"),
        ("iterations", "1000000", "calls in all"),
        ("shapes", "kqueue", "Select a valid choice"),
    ],
)
def test_bad_input_is_an_error_next_to_its_field(client, field, value, message):
    data = {**GOOD, field: value}
    if field == "iterations":
        data["repetitions"] = "50"
    response = post(client, data)
    assert response.status_code == 400
    page = response.content.decode()
    assert f'id="error-{field}"' in page and message in page
    assert not Run.objects.exists()


def test_the_dashboard_states_what_the_sandbox_filter_adds_to_every_syscall(client):
    page = client.get("/").content.decode()
    assert 'id="filter-cost"' in page
    assert "seccomp filter (" in page and "to every syscall here" in page
    assert 'href="/experiments/seccomp-cost/"' in page


def test_the_sandbox_filter_cost_is_measured_with_the_real_program():
    from sysops.sandbox.filter_cost import measure
    from sysops.sandbox.seccomp import seccomp_program

    cost = measure(iterations=5_000, repetitions=3)
    assert cost.instructions == len(seccomp_program()) // 8
    assert cost.unfiltered_ns > 0 and cost.filtered_ns > 0
