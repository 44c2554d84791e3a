"""The mmap and errno-boundary experiments on the web side: bounded forms (bad input is an error
next to its field, never a run), the limits a run raises, and the errno panel."""

import pytest

from sysops.experiments.errno_boundary import spec as errno_spec
from sysops.experiments.mmap import spec as mmap_spec
from sysops.models import Run
from sysops.sandbox import Policy

pytestmark = pytest.mark.django_db

GOOD_MMAP = {
    "kind": "anonymous",
    "sharing": ["private"],
    "size_kib": "1024",
    "pattern": "page",
    "access": "write",
    "populate": ["none", "map_populate"],
    "thp": ["default"],
    "layers": ["native", "python"],
    "repetitions": "3",
    "warmup": "1",
}
GOOD_ERRNO = {
    "cases": ["efault", "ebadf"],
    "layers": ["raw", "libc", "python"],
    "iterations": "100",
    "repetitions": "5",
    "warmup": "1",
    "interrupt_ms": "5",
    "interruptions": "2",
}


def post(client, slug, data):
    return client.post(f"/experiments/{slug}/", data)


def assert_refused_at(response, field):
    assert response.status_code == 400
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


def test_it_creates_runs_for_good_input(client):
    assert post(client, "mmap", GOOD_MMAP).status_code == 302
    assert post(client, "errno-boundary", GOOD_ERRNO).status_code == 302
    assert sorted(Run.objects.values_list("experiment", flat=True)) == ["errno-boundary", "mmap"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("size_kib", "0"),
        ("size_kib", "6"),  # not whole pages
        ("size_kib", str(256 * 1024 + 4)),  # over 256 MiB
        ("size_kib", "1e9"),
        ("repetitions", "0"),
        ("repetitions", "51"),
        ("warmup", "-1"),
        ("kind", "hugetlbfs"),
        ("pattern", "diagonal"),
        ("layers", []),
    ],
)
def test_it_refuses_bad_mmap_input_next_to_the_field(client, field, value):
    assert_refused_at(post(client, "mmap", {**GOOD_MMAP, field: value}), field)


def test_it_bounds_the_number_of_variants(client):
    data = {
        **GOOD_MMAP,
        "sharing": ["private", "shared"],
        "populate": ["none", "map_populate", "willneed"],
        "thp": ["default", "hugepage"],
    }
    assert_refused_at(post(client, "mmap", data), "populate")


def test_it_bounds_the_memory_touched_in_all(client):
    data = {**GOOD_MMAP, "size_kib": str(256 * 1024), "repetitions": "50", "warmup": "5"}
    assert_refused_at(post(client, "mmap", data), "repetitions")


def test_it_refuses_a_map_that_cannot_fit_the_memory_a_run_may_have(client, monkeypatch):
    monkeypatch.setattr(mmap_spec, "host_memory_bytes", lambda: 512 << 20)  # a 512 MiB host
    data = {**GOOD_MMAP, "kind": "file", "size_kib": str(192 * 1024), "repetitions": "1"}
    response = post(client, "mmap", data)
    assert_refused_at(response, "size_kib")
    assert "at most 256 MiB" in response.content.decode()


def test_a_run_raises_its_limits_only_as_far_as_it_needs():
    defaults = Policy(code_dir=None)  # type: ignore[arg-type]
    small = mmap_spec.limits({"kind": "anonymous", "size_kib": 1024, "repetitions": 3})
    assert small["memory_bytes"] == defaults.memory_bytes
    assert small["address_space_bytes"] == defaults.address_space_bytes
    assert "tmpfs_bytes" not in small and "file_size_bytes" not in small

    big_file = mmap_spec.limits({"kind": "file", "size_kib": 256 * 1024, "repetitions": 3})
    size = 256 << 20
    assert defaults.memory_bytes < big_file["memory_bytes"] <= mmap_spec.MEMORY_CEILING_BYTES
    assert big_file["memory_bytes"] >= 2 * size  # the file and a private copy of every page
    assert big_file["tmpfs_bytes"] >= size and big_file["file_size_bytes"] >= size
    assert big_file["address_space_bytes"] >= defaults.address_space_bytes


def test_the_mmap_charts_have_a_series_per_variant():
    params = {**GOOD_MMAP, "sharing": ["private", "shared"]}
    touch, faults = mmap_spec.charts(params)
    assert len(touch.series) == len(faults.series) == 8
    assert all(s.startswith("faults-") for s in faults.series)
    assert touch.to_dict()["labels"]["native-private-map_populate-default"] == (
        "C MAP_PRIVATE MAP_POPULATE (ns/page)"
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("iterations", "0"),
        ("iterations", "100001"),
        ("interrupt_ms", "0"),
        ("interrupt_ms", "201"),
        ("interruptions", "21"),
        ("cases", ["segv"]),
        ("layers", ["kernel"]),
    ],
)
def test_it_refuses_bad_errno_input_next_to_the_field(client, field, value):
    assert_refused_at(post(client, "errno-boundary", {**GOOD_ERRNO, field: value}), field)


def test_it_bounds_the_refused_calls_and_a_full_trace(client):
    many = {**GOOD_ERRNO, "iterations": "100000", "repetitions": "200"}
    assert_refused_at(post(client, "errno-boundary", many), "iterations")
    traced = {**GOOD_ERRNO, "iterations": "50000", "repetitions": "20", "trace": "full"}
    assert_refused_at(post(client, "errno-boundary", traced), "trace")


def test_the_errno_panel_draws_the_table_and_escapes_what_the_worker_sent(client):
    row = {
        "case": "write(pipe, bad pointer, 1)",
        "layer": "Python os",
        "result": "raised",
        "errno": 14,
        "name": "EFAULT",
        "message": "Bad address",
        "raised": "OSError: <script>alert(1)</script>",
        "handler_runs": None,
        "median": 3000.5,
        "min": 2900,
        "max": 3100,
        "unit": "ns/call",
        "n": 5,
        "as_expected": True,
    }
    run = Run.objects.create(
        experiment="errno-boundary",
        params={},
        status=Run.Status.SUCCEEDED,
        results=[
            {
                "metric": "refused calls, side by side",
                "value": 1,
                "unit": "refusals",
                "note": "",
                "detail": {"panel": "errno_boundary", "rows": [row]},
            }
        ],
    )
    body = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'class="results errno-boundary"' in body
    assert "<code>EFAULT</code> (14)" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>alert(1)" not in body


def test_the_catalog_lists_both_with_their_man_pages(client):
    body = client.get("/").content.decode()
    assert "mmap: memory maps and page faults" in body
    assert "errno: the user/kernel safety boundary" in body
    page = client.get("/experiments/errno-boundary/").content.decode()
    assert "https://man7.org/linux/man-pages/man2/setitimer.2.html" in page
    assert errno_spec.EXPERIMENT.look_for.split(":")[0] in page


def test_a_sweep_counts_in_the_memory_budget_and_adds_its_chart(client):
    # 4 variants × 5 repetitions of 256 MiB fit; the sweep's smaller sizes push it over.
    data = {**GOOD_MMAP, "size_kib": str(256 * 1024), "repetitions": "5", "warmup": "0"}
    assert post(client, "mmap", data).status_code == 302
    Run.objects.all().delete()
    assert_refused_at(post(client, "mmap", {**data, "sweep": "on"}), "repetitions")
    charts = mmap_spec.charts({**GOOD_MMAP, "sweep": True})
    assert [c.id for c in charts] == ["sweep", "touch", "faults"]
    assert charts[0].x_log and charts[0].x_label == "map size (KiB)"
