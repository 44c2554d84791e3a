"""file-io's form: bad input is a field error next to the field, never a run."""

import pytest

from sysops.experiments.file_io.spec import scratch_logical_block_bytes
from sysops.models import Run

pytestmark = pytest.mark.django_db

GOOD = {
    "mode": "fsync",
    "block_bytes": "4096",
    "file_mib": "16",
    "operations": "1000",
    "warmup": "10",
    "layers": ["native"],
}


def errors_of(client, data):
    response = client.post("/experiments/file-io/", data)
    assert Run.objects.count() == 0, "bad input must not start a run"
    return response.context["form"].errors


def test_it_creates_a_run_for_good_input(client):
    client.post("/experiments/file-io/", GOOD)
    assert Run.objects.get().params["block_bytes"] == 4096


def test_an_o_direct_block_size_off_the_logical_block_size_is_refused(client):
    unit = scratch_logical_block_bytes()
    errors = errors_of(client, {**GOOD, "mode": "odirect", "block_bytes": str(unit + 100)})
    assert f"logical block size ({unit} bytes" in errors["block_bytes"][0]


def test_misalignment_is_only_for_o_direct(client):
    errors = errors_of(client, {**GOOD, "mode": "buffered", "misalign": "on"})
    assert "O_DIRECT" in errors["misalign"][0]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("block_bytes", "256"),
        ("block_bytes", str(2 << 20)),
        ("file_mib", "257"),
        ("file_mib", "0"),
        ("operations", "25000"),  # over the cap for a mode that waits for the disk
        ("warmup", "-1"),
        ("mode", "O_NONSENSE"),
    ],
)
def test_out_of_bounds_input_is_a_field_error(client, field, value):
    assert field in errors_of(client, {**GOOD, field: value})


def test_too_many_bytes_in_all_is_refused(client):
    errors = errors_of(
        client,
        {**GOOD, "mode": "buffered", "block_bytes": str(1 << 20), "operations": "5000"},
    )
    assert "MiB per layer" in errors["operations"][0]


def test_its_page_shows_the_form_and_the_man_pages(client):
    page = client.get("/experiments/file-io/").content.decode()
    assert 'name="block_bytes"' in page and 'name="misalign"' in page
    assert "man2/fdatasync.2.html" in page
