"""go-scheduler's and wasm-boundary's forms: bad input is a field error, never a run."""

import pytest

from sysops.experiments import registry
from sysops.models import Run

pytestmark = pytest.mark.django_db

GOOD_SCHEDULER = {
    "variants": ["syscall_sleep", "raw_sleep_nopreempt"],
    "block_ms": "200",
    "lead_ms": "50",
}


def post(client, slug, data):
    return client.post(f"/experiments/{slug}/", data)


def test_go_scheduler_creates_a_run_for_good_input(client):
    response = post(client, "go-scheduler", GOOD_SCHEDULER)
    assert response.status_code == 302
    assert Run.objects.get().params["variants"] == ["syscall_sleep", "raw_sleep_nopreempt"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("block_ms", "0"),
        ("block_ms", "100000"),
        ("block_ms", "abc"),
        ("lead_ms", "-5"),
        ("lead_ms", "1e9"),
        ("variants", "raw_read"),  # a RawSyscall read on a pipe would deadlock: not offered
        ("variants", ""),
    ],
)
def test_go_scheduler_rejects_bad_input_next_to_the_field(client, field, value):
    response = post(client, "go-scheduler", {**GOOD_SCHEDULER, field: value})
    assert response.status_code == 400
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


GOOD_WASM = {
    "layers": ["wasm_to_host", "native"],
    "iterations": "1000",
    "repetitions": "5",
    "warmup": "1",
    "sizes": ["64", "4096"],
}


def test_wasm_boundary_creates_a_run_for_good_input(client):
    response = post(client, "wasm-boundary", GOOD_WASM)
    assert response.status_code == 302
    run = Run.objects.get()
    assert run.params["sizes"] == [64, 4096]
    assert run.params["iterations"] == 1000


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("iterations", "0"),
        ("iterations", "10000000"),
        ("iterations", "many"),
        ("repetitions", "1000"),
        ("warmup", "-1"),
        ("sizes", "3"),  # not a size on offer
        ("sizes", ""),
        ("layers", "teleport"),
        ("layers", ""),
    ],
)
def test_wasm_boundary_rejects_bad_input_next_to_the_field(client, field, value):
    response = post(client, "wasm-boundary", {**GOOD_WASM, field: value})
    assert response.status_code == 400
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


def test_wasm_boundary_bounds_the_calls_a_run_makes(client):
    data = {**GOOD_WASM, "iterations": "50000", "repetitions": "100", "warmup": "10"}
    response = post(client, "wasm-boundary", data)
    assert response.status_code == 400
    assert "at or below" in response.content.decode()
    assert not Run.objects.exists()


@pytest.mark.parametrize("slug", ["go-scheduler", "wasm-boundary"])
def test_the_form_page_renders_with_every_field(client, slug):
    response = client.get(f"/experiments/{slug}/")
    assert response.status_code == 200
    page = response.content.decode()
    for name in registry.get(slug).form_class.base_fields:
        assert f'name="{name}"' in page
