"""Bundles: a run or a comparison exported as one JSON file, imported elsewhere read-only; and
every malformed or hostile bundle refused with a message naming the field, creating nothing."""

import copy
import hashlib
import io
import json

import pytest
from django.test import override_settings

from sysops import bundle
from sysops.agent.events import HOST_FIELDS
from sysops.models import Host, Run, RunLog, SampleChunk
from tests.helpers.small_runs import SYSCALL_COST_SMALL

pytestmark = pytest.mark.django_db

PARAMS = SYSCALL_COST_SMALL


def fingerprint(**changes):
    host = {
        name: ({key: None for key in kind} if isinstance(kind, dict) else None)
        for name, kind in HOST_FIELDS.items()
    }
    host["kernel"] = {"release": "6.1.0-test", "version": "#1 SMP Debian"}
    host["hostname"] = "elsewhere"
    host["mitigations"] = {"meltdown": "Mitigation: PTI"}
    return {**host, **changes}


def stored_run(note="", **fields):
    run = Run.objects.create(
        experiment="syscall-cost",
        params=PARAMS,
        status=Run.Status.SUCCEEDED,
        trace_mode="sampled",
        results=[
            {
                "metric": "getppid native",
                "value": 88.5,
                "unit": "ns/call",
                "note": note,
                "dist": {"n": 5, "min": 80, "median": 88.5, "p99": None, "max": 99.0},
                "layer": "native",
                "ratio_to_native": 1,
            }
        ],
        trace={
            "status": "done",
            "events": 3,
            "summary": {
                "rows": [
                    {
                        "name": "getppid",
                        "calls": 3,
                        "errors": 0,
                        "total_s": 3e-6,
                        "avg_s": 1e-6,
                        "max_s": 1e-6,
                        "share_pct": 100.0,
                    }
                ],
                "total": {"calls": 3, "errors": 0, "total_s": 3e-6},
            },
        },
        host=Host.for_fingerprint(fingerprint()),
        **fields,
    )
    SampleChunk.objects.create(run=run, seq=1, samples=[["native", 0, 88.5], ["native", 1, 90]])
    RunLog.objects.create(run=run, seq=1, message="hello from the worker")
    return run


def exported(*runs):
    """A bundle as another instance reads it from the file."""
    return json.loads(json.dumps(bundle.export(list(runs), source="testserver")))


def upload(client, content, name="run.json"):
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    return client.post("/runs/import/", {"bundle": io.BytesIO(data)}, format="multipart")


def test_export_then_import_gives_the_same_run_field_by_field(client):
    original = stored_run(note="p99 needs n>=100")
    response = client.get(f"/runs/{original.pk}/bundle.json")
    assert (
        response["Content-Disposition"] == f'attachment; filename="sysops-run-{original.pk}.json"'
    )
    content = json.loads(response.content)
    assert content["format"] == bundle.FORMAT and content["version"] == bundle.FORMAT_VERSION
    assert content["exporter"]["kernel"] and content["exporter"]["app_version"]
    assert content == bundle.seal(content)  # its sha256 is of its own content
    response = upload(client, content)
    imported = Run.objects.exclude(pk=original.pk).get()
    assert response["Location"] == f"/runs/{imported.pk}/"
    again = bundle.run_record(imported)
    first = bundle.run_record(Run.objects.get(pk=original.pk))
    assert again.pop("id") != first.pop("id")
    for field, value in first.items():
        assert again[field] == value, field
    assert imported.imported and not original.imported
    assert imported.imported_from["run"] == original.pk
    assert imported.imported_from["sha256"] == content["sha256"]
    assert imported.host_id == original.host_id  # the same machine is one host


def test_a_comparison_bundle_imports_as_a_comparison(client):
    a, b = stored_run(), stored_run()
    content = json.loads(client.get(f"/compare/{a.pk},{b.pk}/bundle.json").content)
    assert content["kind"] == "comparison" and [r["id"] for r in content["runs"]] == [a.pk, b.pk]
    response = upload(client, content)
    new = list(Run.objects.filter(imported=True).order_by("pk").values_list("pk", flat=True))
    assert response["Location"] == f"/compare/{new[0]},{new[1]}/"
    # Imported runs compare with local ones.
    assert client.get(f"/compare/{a.pk},{new[0]}/").status_code == 200


def test_an_imported_run_is_never_queued_claimed_or_cancelled(client):
    run = bundle.import_bundle(json.dumps(exported(stored_run())).encode(), user=None)[0]
    assert run.status == Run.Status.SUCCEEDED
    assert not Run.objects.claim(run.pk, by="test")
    client.post(f"/runs/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == Run.Status.SUCCEEDED and not run.cancel_requested
    body = client.get(f"/runs/{run.pk}/").content.decode()
    assert 'id="run-imported"' in body and "of testserver" in body


def test_markup_in_free_text_is_kept_as_text_and_rendered_escaped(client):
    content = exported(stored_run(note="<script>alert(1)</script>"))
    content["runs"][0]["reason"] = "<img src=x onerror=alert(2)>"
    content["runs"][0]["logs"] = [{"level": "info", "source": "worker", "message": "<b>bold</b>"}]
    upload(client, bundle.seal(content))
    run = Run.objects.get(imported=True)
    body = client.get(f"/runs/{run.pk}/").content.decode()
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<img src=x" not in body and "&lt;img src=x onerror=alert(2)&gt;" in body
    local = stored_run()
    body = client.get(f"/compare/{local.pk},{run.pk}/").content.decode()
    assert "<script>alert(1)" not in body and "<img src=x" not in body


def attacker_seal(content):
    """The sha256 an attacker computes, NaN or not: a sound seal proves nothing about content."""
    body = {k: v for k, v in content.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**body, "sha256": hashlib.sha256(text.encode()).hexdigest()}


def hostile(change):
    """A bundle of one run changed by ``change(content, run)``, resealed as an attacker would."""

    def make():
        content = exported(stored_run())
        change(content, content["runs"][0])
        return attacker_seal(content)

    return make


def _set(path, value):
    def change(content, run):
        target = run
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


CASES = [
    ("wrong type of results", _set(["results"], "many"), "runs[0].results: must be a list"),
    (
        "a row's value wrong",
        _set(["results", 0, "value"], {"x": float("nan")}),
        "value must be a finite number",
    ),
    (
        "NaN sample",
        _set(["samples", 0, 2], float("nan")),
        "runs[0].samples[0] y must be a finite number",
    ),
    (
        "Infinity progress",
        _set(["progress"], float("inf")),
        "runs[0].progress must be a finite number",
    ),
    (
        "huge samples",
        _set(["samples"], [["native", 0, 1]] * 200_001),
        "runs[0].samples: must be a list of at most 200,000",
    ),
    ("too many rows", _set(["results"], [{"metric": "m", "value": 1}] * 501), "at most 500 rows"),
    (
        "unknown experiment",
        _set(["experiment"], "rm-rf"),
        "runs[0].experiment: no experiment 'rm-rf'",
    ),
    ("oversized string", _set(["reason"], "x" * 5000), "runs[0].reason is over 4000 characters"),
    (
        "markup in a metric",
        _set(["results", 0, "metric"], "<script>x</script>"),
        "runs[0].results[0].metric: markup is not allowed",
    ),
    (
        "markup in a series",
        _set(["samples", 0, 0], "<img src=x>"),
        "runs[0].samples[0] series: markup is not allowed",
    ),
    (
        "markup in a host fact",
        _set(["host", "cpu_model"], "<b>cpu</b>"),
        "runs[0].host.cpu_model: markup is not allowed",
    ),
    (
        "markup in a syscall name",
        _set(["trace", "summary", "rows", 0, "name"], "</td>"),
        "runs[0].trace.summary.rows[0].name: markup",
    ),
    ("unknown host key", _set(["host", "evil"], "x"), "runs[0].host: host has unknown keys 'evil'"),
    (
        "out-of-bounds parameter",
        _set(["params", "iterations"], 10**9),
        "runs[0].params.iterations:",
    ),
    (
        "unknown parameter",
        _set(["params", "shell"], "rm -rf /"),
        "runs[0].params.shell: not a parameter",
    ),
    (
        "a parameter of the wrong type",
        _set(["params", "layers"], "native"),
        "runs[0].params.layers",
    ),
    ("not finished", _set(["status"], "queued"), "runs[0].status: must be a finished state"),
    ("bad time", _set(["created_at"], "yesterday"), "runs[0].created_at: must be an ISO 8601 time"),
    (
        "negative count",
        _set(["trace", "summary", "rows", 0, "calls"], -1),
        "rows[0].calls: must be a non-negative integer",
    ),
    ("boolean as id", _set(["id"], True), "runs[0].id: must be a positive integer"),
    (
        "bad log level",
        _set(["logs"], [{"level": "evil", "source": "w", "message": "m"}]),
        "runs[0].logs[0].level",
    ),
    ("unknown run field", _set(["queue"], True), "runs[0]: unknown field 'queue'"),
    ("missing field", lambda c, r: r.pop("params"), "runs[0].params: missing"),
    ("too many runs", lambda c, r: c.update(runs=[r] * 9), "runs: must be a list of 1 to 8 runs"),
    (
        "mixed comparison",
        lambda c, r: c.update(
            kind="comparison", runs=[r, {**r, "experiment": "epoll-echo", "params": {}}]
        ),
        "runs[1].params",
    ),
    ("wrong version", lambda c, r: c.update(version=2), "version: 2 is not a version"),
    ("unknown top field", lambda c, r: c.update(script="x"), "unknown field 'script'"),
    (
        "markup in the source",
        lambda c, r: c.update(source="<a href=x>"),
        "source: markup is not allowed",
    ),
    (
        "deep nesting",
        _set(["trace", "extra"], json.loads("[" * 20 + "]" * 20)),
        "runs[0].trace.extra is nested more than 8 deep",
    ),
]


@pytest.mark.parametrize(("name", "change", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_hostile_bundle_is_refused_naming_the_field(client, name, change, message):
    content = hostile(change)()
    before = Run.objects.count()
    response = upload(client, json.dumps(content).encode())
    assert response.status_code == 400, name
    assert message in response.content.decode().replace("&#x27;", "'"), response.content.decode()
    assert Run.objects.count() == before
    assert not Run.objects.filter(imported=True).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"format": "zip"}', "format: this is not a syscall-playground-bundle"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_a_bundle_that_is_not_one_is_refused(client, data, message):
    response = upload(client, data)
    assert response.status_code == 400 and message in response.content.decode()


def test_a_changed_bundle_fails_its_sha256(client):
    content = exported(stored_run())
    content["runs"][0]["results"][0]["value"] = 1.0  # a better figure, unsealed
    response = upload(client, content)
    assert response.status_code == 400 and "sha256: does not match" in response.content.decode()
    assert Run.objects.filter(imported=True).count() == 0


@override_settings(SYSOPS_BUNDLE_MAX_BYTES=10_000)
def test_an_oversized_bundle_is_refused_with_413(client):
    response = upload(client, b" " * 20_000)
    assert response.status_code == 413 and "SYSOPS_BUNDLE_MAX_BYTES" in response.content.decode()
    big = b"x" * 200_000
    response = client.post("/runs/import/", {"bundle": io.BytesIO(big)}, format="multipart")
    assert response.status_code == 413


def test_the_import_form_and_its_empty_post(client):
    assert 'enctype="multipart/form-data"' in client.get("/runs/import/").content.decode()
    assert client.post("/runs/import/", {}).status_code == 400


def test_a_bundle_with_copies_deep_enough_is_still_checked():
    content = exported(stored_run())
    twin = copy.deepcopy(content)
    twin["runs"][0]["samples"] = [["native", 0, 1e308 * 10]]
    with pytest.raises(bundle.BundleError, match="finite"):
        bundle.parse(json.dumps(attacker_seal(twin)).encode())


def test_logs_are_optional_in_a_bundle(client):
    run = stored_run()
    with_logs = json.loads(client.get(f"/runs/{run.pk}/bundle.json").content)
    without = json.loads(client.get(f"/runs/{run.pk}/bundle.json?logs=0").content)
    assert with_logs["runs"][0]["logs"][0]["message"] == "hello from the worker"
    assert without["runs"][0]["logs"] == []
    upload(client, without)
    assert Run.objects.get(imported=True).logs.count() == 0


def test_the_same_bundle_imported_twice_gives_the_same_runs(client):
    content = exported(stored_run(), stored_run())
    first = upload(client, content)
    again = upload(client, content)
    assert first["Location"] == again["Location"]
    assert Run.objects.filter(imported=True).count() == 2
