"""Two real runs of one experiment, through the sandboxed runner and traced, compared; and a real
run's bundle imported back, identical field by field."""

import io
import json
import re

import pytest

from sysops import bundle
from sysops.agent.runner import execute
from sysops.models import Run

pytestmark = pytest.mark.django_db(transaction=True)

PARAMS = {"call": "getppid", "layers": ["native"], "repetitions": 5, "warmup": 0}


def traced_run(iterations):
    run = Run.objects.create(
        experiment="syscall-cost",
        params={**PARAMS, "iterations": iterations},
        trace_mode=Run.TraceMode.FULL,
        status=Run.Status.RUNNING,
    )
    run = execute(run.pk, lambda group, message: None)
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert run.trace["status"] == "done", run.trace
    return run


def cells(body, syscall):
    row = body.split(f'data-syscall="{syscall}"')[1].split("</tr>")[0]
    return re.findall(r'<td class="n(?: delta)?">([^<]*)</td>', row)


def test_two_real_traced_runs_side_by_side(client):
    small, large = traced_run(1000), traced_run(2000)
    response = client.get(f"/compare/{small.pk},{large.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    # The parameter that differs, highlighted; the one that does not, plain.
    assert '<tr class="differs"><th>iterations</th><td>1000</td><td>2000</td>' in body
    assert "<th>call</th><td>getppid</td><td>getppid</td>" in body
    # Both runs' series on the one chart, each run's samples under its own name.
    data = json.loads(
        body.split('id="compare-data" type="application/json">')[1].split("</script>")[0]
    )
    (chart,) = data["charts"]
    assert chart["labels"] == {
        f"run{small.pk}:native": f"run {small.pk}: native C loop (syscall(2))",
        f"run{large.pk}:native": f"run {large.pk}: native C loop (syscall(2))",
    }
    per_run = {name: sum(1 for s in data["samples"] if s[0] == name) for name in chart["series"]}
    assert per_run == {f"run{small.pk}:native": 5, f"run{large.pk}:native": 5}
    # The traced passes made 5 × 1000 and 5 × 2000 getppid calls: the delta says so.
    calls_small, errors_small, _, calls_large, errors_large, _, d_calls, d_errors, _ = cells(
        body, "getppid"
    )
    assert int(calls_small.replace(",", "")) >= 5000
    assert int(calls_large.replace(",", "")) - int(calls_small.replace(",", "")) == 5000
    assert d_calls == "+5,000" and d_errors == "0"
    # A ratio per metric against the baseline, in the result table.
    assert re.search(r'<td class="n ratio">[0-9.]+×</td>', body)


def test_a_real_runs_bundle_round_trips_exactly(client):
    original = traced_run(1000)
    content = client.get(f"/runs/{original.pk}/bundle.json").content
    response = client.post("/runs/import/", {"bundle": io.BytesIO(content)}, format="multipart")
    imported = Run.objects.get(imported=True)
    assert response["Location"] == f"/runs/{imported.pk}/"
    first, again = bundle.run_record(original), bundle.run_record(imported)
    first.pop("id"), again.pop("id")
    assert first.keys() == again.keys()
    for field in first:
        assert again[field] == first[field], field
    assert again["host"]["kernel"]["release"] and again["trace"]["summary"]["rows"]
    assert client.get(f"/compare/{original.pk},{imported.pk}/").status_code == 200
