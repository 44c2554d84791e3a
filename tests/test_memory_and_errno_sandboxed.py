"""mmap and errno-boundary for real, in the real sandbox, through the runner and headless."""

import io

import pytest
from django.core.management import call_command

from sysops.models import Run, SampleChunk
from tests.test_experiments_sandboxed import run_now

pytestmark = pytest.mark.django_db(transaction=True)


def rows_of(run):
    return {row["metric"]: row for row in run.results}


def test_mmap_populate_takes_no_faults_and_a_private_write_stays_out_of_the_file():
    run, _ = run_now(
        "mmap",
        {
            "kind": "file",
            "sharing": ["private", "shared"],
            "size_kib": 1024,
            "pattern": "page",
            "access": "write",
            "populate": ["none", "map_populate"],
            "thp": ["default"],
            "layers": ["native"],
            "repetitions": 2,
            "warmup": 0,
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert not run.unsandboxed
    rows = rows_of(run)
    # A private write faults every page (copy-on-write); populate took those faults in mmap.
    assert rows["faults per page, C MAP_PRIVATE"]["dist"]["min"] >= 0.95
    assert rows["faults per page, C MAP_PRIVATE MAP_POPULATE"]["dist"]["max"] <= 0.05
    pages = 1024 * 1024 // 4096
    assert rows["file pages changed (read back), C MAP_PRIVATE"]["value"] == 0
    assert rows["file pages changed (read back), C MAP_SHARED"]["value"] == pages
    # Inside the sandbox the file is on its private tmpfs, and the page says so.
    assert "tmpfs" in rows["file map's filesystem"]["value"]
    assert rows["transparent huge pages"]["value"].split()[0] in ("always", "madvise", "never")
    series = {s[0] for c in SampleChunk.objects.filter(run=run) for s in c.samples}
    assert "native-private-none-default" in series
    assert "faults-native-shared-map_populate-default" in series


def test_a_big_file_map_runs_within_the_limits_it_raised():
    run, _ = run_now(
        "mmap",
        {
            "kind": "file",
            "sharing": ["private"],
            "size_kib": 96 * 1024,  # over the sandbox's default 64 MiB tmpfs and file size
            "pattern": "page",
            "access": "write",
            "populate": ["none"],
            "thp": ["default"],
            "layers": ["native"],
            "repetitions": 1,
            "warmup": 0,
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert rows_of(run)["file pages changed (read back), C MAP_PRIVATE"]["value"] == 0


def test_errno_boundary_gets_efault_at_all_three_layers_and_the_worker_survives():
    run, _ = run_now(
        "errno-boundary",
        {
            "cases": ["efault", "eintr", "eintr_restart"],
            "layers": ["raw", "libc", "python"],
            "iterations": 20,
            "repetitions": 3,
            "warmup": 0,
            "interrupt_ms": 2,
            "interruptions": 1,
        },
    )
    assert run.status == Run.Status.SUCCEEDED, run.reason
    assert not run.unsandboxed
    rows = rows_of(run)
    efault = [row for metric, row in rows.items() if metric.startswith("write(pipe, bad pointer")]
    assert [row["layer"] for row in efault] == ["raw", "libc", "python"]
    assert all(row["errno_name"] == "EFAULT" for row in efault)
    assert "OSError" in efault[2]["note"]
    table = rows["refused calls, side by side"]["detail"]["rows"]
    eintr = {r["layer"]: r["result"] for r in table if "without SA_RESTART" in r["case"]}
    resumed = {r["layer"]: r["result"] for r in table if "with SA_RESTART" in r["case"]}
    assert eintr["syscall instruction (C)"] == "-4" and resumed["syscall instruction (C)"] == "1"
    assert rows["worker after the refused calls"]["value"] == "alive"


def test_the_headless_command_runs_mmap():
    out = io.StringIO()
    call_command(
        "run_experiment",
        "mmap",
        "--param",
        "size_kib=256",
        "--param",
        "repetitions=2",
        "--param",
        "layers=native",
        "--param",
        "populate=none",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "first touch, C MAP_PRIVATE" in out.getvalue()
    assert Run.objects.get().status == Run.Status.SUCCEEDED
