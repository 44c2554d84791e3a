"""The trace set and fault fields: bad input is an error next to the field, never a run."""

import pytest

from sysops.experiments import registry
from sysops.models import Run
from sysops.tracing import scope
from tests import test_forms

pytestmark = pytest.mark.django_db

GOOD_COST = {**test_forms.GOOD_COST, "call": "read", "trace": "full"}


def post(client, data):
    return client.post("/experiments/syscall-cost/", data)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("all", None),
        ("", None),
        ("file", "%file"),
        ("%network", "%network"),
        (" write , read,write", "read,write"),
    ],
)
def test_a_trace_set_is_stored_in_canonical_form(client, given, stored):
    response = post(client, {**GOOD_COST, "trace_set": given})
    assert response.status_code == 302
    assert Run.objects.get().params.get("trace_set") == stored


@pytest.mark.parametrize("given", ["reed", "read;rm -rf /", "%bogus", "read,,$(id)", ","])
def test_an_unknown_syscall_is_an_error_next_to_the_field(client, given):
    response = post(client, {**GOOD_COST, "trace_set": given})
    assert response.status_code == 400
    assert 'id="error-trace_set"' in response.content.decode()
    assert not Run.objects.exists()


def test_no_trace_stores_no_trace_set(client):
    response = post(client, {**GOOD_COST, "trace": "off", "trace_set": "read"})
    assert response.status_code == 302
    assert "trace_set" not in Run.objects.get().params


def test_a_fault_is_stored_and_split_from_the_probes_params(client):
    fault = {"inject_syscall": "read", "inject_errno": "EIO", "inject_when": "3"}
    response = post(client, {**GOOD_COST, **fault})
    assert response.status_code == 302
    params = Run.objects.get().params
    probe_params, trace_set, parsed = registry.get("syscall-cost").split_trace_options(params)
    assert parsed == scope.Fault("read", "EIO", 3, "/dev/zero")
    assert not {k for k in probe_params if k.startswith("inject_")}
    assert trace_set == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("inject_syscall", "execve"),
        ("inject_syscall", "read:error=EIO"),
        ("inject_errno", "ENOENT;id"),
        ("inject_errno", "EWHATEVER"),
        ("inject_when", "0"),
        ("inject_when", "1001"),
        ("inject_when", "3+"),
    ],
)
def test_a_bad_fault_is_an_error_next_to_its_field(client, field, value):
    fault = {"inject_syscall": "read", "inject_errno": "EIO", "inject_when": "3", field: value}
    response = post(client, {**GOOD_COST, **fault})
    assert response.status_code == 400
    assert f'id="error-{field}"' in response.content.decode()
    assert not Run.objects.exists()


def test_a_fault_into_another_call_than_the_measured_one_is_refused(client):
    fault = {"inject_syscall": "write", "inject_errno": "EIO", "inject_when": "3"}
    response = post(client, {**GOOD_COST, **fault})
    assert response.status_code == 400
    assert 'id="error-inject_syscall"' in response.content.decode()


def test_strace_argv_is_built_from_checked_values_only():
    fault = scope.Fault("read", "EIO", 3, "/dev/zero")
    args = scope.strace_filter_args("", fault)
    assert args == [
        "-P",
        "/dev/zero",
        "-P",
        "/sysops-trace-begin",
        "-P",
        "/sysops-trace-end",
        "-e",
        "inject=read:error=EIO:when=3",
        "--seccomp-bpf",
        "-e",
        "trace=read,access,faccessat,faccessat2",
    ]
    with pytest.raises(ValueError):
        scope.Fault("read:error=EIO", "EIO", 3, "/dev/zero")
    with pytest.raises(ValueError):
        scope.Fault("access", "EIO", 3, "/dev/zero")


def test_the_form_estimates_a_full_traces_cost_from_its_calls_and_this_hosts_cost(
    client, settings, tmp_path
):
    from sysops.tracing import cost

    settings.VAR_DIR = tmp_path
    cost.record(20.0, events=5_000)
    query = {**GOOD_COST, "layers": ["python", "ctypes"], "repetitions": "9", "warmup": "1"}
    response = client.get("/experiments/syscall-cost/trace-estimate/", query)
    assert response.status_code == 200
    text = response.content.decode()
    # 1,000 iterations × (9 + 1) repetitions × 2 layers, at 20 µs each: 0.4 s.
    assert "20,000 calls" in text and "400 ms" in text and "20 µs" in text, text
    page = client.get("/experiments/syscall-cost/").content.decode()
    assert 'id="trace-estimate"' in page


def test_the_eta_comes_from_the_rate_so_far():
    from sysops.tracing.render import eta_text

    assert eta_text(1_000, 11_000, elapsed_s=2.0) == (
        "traced pass: 1,000 of ~11,000 calls, about 20 s left"
    )
    assert eta_text(0, 11_000, elapsed_s=2.0) == ""
    assert eta_text(5, None, elapsed_s=2.0) == ""


def test_a_bundle_keeps_the_trace_set_and_the_harness_count(client):
    from sysops import bundle
    from tests.test_bundle import exported, stored_run, upload

    original = stored_run()
    original.params = {**original.params, "trace_set": "getppid"}
    original.trace["summary"]["harness_calls"] = 7
    original.save()
    response = upload(client, exported(original))
    assert response.status_code == 302, response.content.decode()[:500]
    imported = Run.objects.exclude(pk=original.pk).get()
    assert imported.params["trace_set"] == "getppid"
    assert imported.trace["summary"]["harness_calls"] == 7
    assert bundle.run_record(imported)["trace"] == bundle.run_record(original)["trace"]
