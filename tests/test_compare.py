"""Runs side by side, history filters and "run again with changes", on stored runs."""

import pytest
from django.contrib.auth.models import User

from sysops import comparison
from sysops.models import Host, Run, SampleChunk
from tests.helpers.small_runs import SYSCALL_COST_SMALL

pytestmark = pytest.mark.django_db

PARAMS = SYSCALL_COST_SMALL


def summary(rows):
    return {
        "rows": [
            {
                "name": name,
                "calls": calls,
                "errors": errors,
                "total_s": total_s,
                "avg_s": total_s / calls,
                "max_s": total_s,
                "share_pct": 50.0,
            }
            for name, calls, errors, total_s in rows
        ],
        "total": {"calls": 0, "errors": 0, "total_s": 0.0},
    }


def finished(params=None, *, value=100.0, kernel="6.1.0", experiment="syscall-cost", **fields):
    host = Host.for_fingerprint({"kernel": {"release": kernel}, "hostname": f"h-{kernel}"})
    run = Run.objects.create(
        experiment=experiment,
        params=params or PARAMS,
        status=Run.Status.SUCCEEDED,
        results=[{"metric": "getppid native", "value": value, "unit": "ns/call", "note": ""}],
        host=host,
        **fields,
    )
    SampleChunk.objects.create(run=run, seq=1, samples=[["native", 1, value], ["native", 2, value]])
    return run


def test_it_compares_two_runs_with_the_differences_highlighted(client):
    a = finished(
        value=100.0, trace_mode="full", trace={"summary": summary([("write", 4, 0, 1e-5)])}
    )
    b = finished(
        {**PARAMS, "iterations": 2000},
        value=150.0,
        kernel="6.8.0",
        trace_mode="full",
        trace={"summary": summary([("write", 6, 1, 3e-5), ("setsockopt", 1, 0, 1e-6)])},
    )
    response = client.get(f"/compare/{a.pk},{b.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert '<tr class="differs"><th>iterations</th><td>1000</td><td>2000</td>' in body
    assert '<tr class="differs"><th>kernel.release</th><td>6.1.0</td><td>6.8.0</td>' in body
    assert "<th>call</th><td>getppid</td><td>getppid</td>" in body  # same: not highlighted
    assert "1.500×" in body  # the ratio of 150 to the baseline's 100
    assert f"run {b.pk}: native C loop (syscall(2))" in body  # the overlaid legend
    assert f'"run{a.pk}:native", 1, 100.0' in body  # both runs' samples, for the charts
    write = body.split('data-syscall="write"')[1].split("</tr>")[0]
    assert '<td class="n delta">+2</td><td class="n delta">+1</td>' in write
    assert "setsockopt" in body


@pytest.mark.parametrize(
    ("ids", "status", "message"),
    [
        ("{a},{other}", 400, "Only runs of one experiment"),
        ("{a},999999", 404, "No run 999999"),
        ("{a},{a}", 400, "only once"),
        ("{a}", 400, "at least 2"),
        ("1,2,3,4,5,6,7,8,9", 400, "At most 8 runs"),
        ("{a},x", 400, "by number"),
    ],
)
def test_it_refuses_what_cannot_be_compared(client, ids, status, message):
    a = finished()
    other = finished(experiment="epoll-echo", params={"clients": 2})
    queued = Run.objects.create(experiment="syscall-cost", params=PARAMS)
    response = client.get(f"/compare/{ids.format(a=a.pk, other=other.pk, queued=queued.pk)}/")
    assert response.status_code == status
    assert message in response.content.decode()
    assert (
        client.get(
            f"/compare/{ids.format(a=a.pk, other=other.pk, queued=queued.pk)}/bundle.json"
        ).status_code
        == status
    )


def test_picking_runs_lands_on_the_permalink(client):
    a, b = finished(), finished()
    response = client.get(f"/compare/?run={b.pk}&run={a.pk}")
    assert response.status_code == 302 and response["Location"] == f"/compare/{a.pk},{b.pk}/"
    assert client.get(f"/compare/?run={a.pk}").status_code == 400


def test_history_filters_and_shows_owner_and_trace_mode(client):
    alice = User.objects.create_user("alice", password="pw")
    mine = finished(user=alice, trace_mode="sampled")
    echo = finished(experiment="epoll-echo", params={"clients": 2}, kernel="6.8.0")
    queued = Run.objects.create(experiment="syscall-cost", params=PARAMS)
    body = client.get("/runs/").content.decode()
    row = body.split(f'id="run-row-{mine.pk}"')[1].split("</tr>")[0]
    assert "<td>sampled</td>" in row and "<td>alice</td>" in row
    assert f'name="run" value="{mine.pk}"' in row  # finished: can be picked
    queued_row = body.split(f'id="run-row-{queued.pk}"')[1].split("</tr>")[0]
    assert 'name="run"' not in queued_row
    body = client.get("/runs/?experiment=epoll-echo").content.decode()
    assert f'id="run-row-{echo.pk}"' in body and f'id="run-row-{mine.pk}"' not in body
    body = client.get("/runs/?status=queued").content.decode()
    assert f'id="run-row-{queued.pk}"' in body and f'id="run-row-{mine.pk}"' not in body
    body = client.get(f"/runs/?host={echo.host_id}").content.decode()
    assert f'id="run-row-{echo.pk}"' in body and f'id="run-row-{mine.pk}"' not in body
    body = client.get("/runs/?trace=sampled&page=1").content.decode()
    assert f'id="run-row-{mine.pk}"' in body and f'id="run-row-{echo.pk}"' not in body
    assert 'name="owner"' not in body  # owners are a staff filter
    User.objects.create_superuser("root", password="pw")
    client.login(username="root", password="pw")
    body = client.get(f"/runs/?owner={alice.pk}").content.decode()
    assert 'name="owner"' in body
    assert f'id="run-row-{mine.pk}"' in body and f'id="run-row-{echo.pk}"' not in body


def test_run_again_with_changes_starts_from_the_old_parameters(client):
    old = finished(trace_mode="sampled")
    body = client.get(f"/experiments/syscall-cost/?from={old.pk}").content.decode()
    assert 'name="iterations" value="1000"' in body
    assert f'<input type="hidden" name="from" value="{old.pk}">' in body
    # What the page diffs the edited form against: the values as the browser would post them.
    assert '{"call": ["getppid"], "layers": ["native"], "iterations": ["1000"]' in body
    assert '"trace": ["sampled"]' in body
    form = {**PARAMS, "iterations": "3000", "trace": "sampled", "from": str(old.pk)}
    response = client.post("/experiments/syscall-cost/", form)
    new = Run.objects.get(parent=old)
    assert response["Location"] == f"/runs/{new.pk}/"
    assert new.params["iterations"] == 3000
    body = client.get(f"/runs/{new.pk}/").content.decode()
    assert "<code>iterations: 1000 → 3000</code>" in body
    assert f'href="/compare/{old.pk},{new.pk}/"' in body
    # Plain "run again" records its origin too; a run of another experiment cannot be the origin.
    client.post(f"/runs/{old.pk}/again/")
    assert Run.objects.filter(parent=old).count() == 2
    assert client.get(f"/experiments/epoll-echo/?from={old.pk}").status_code == 404


def test_the_run_page_offers_to_compare_with_other_finished_runs(client):
    a, b = finished(), finished()
    body = client.get(f"/runs/{b.pk}/").content.decode()
    assert 'id="compare-with"' in body and f'name="run" value="{a.pk}"' in body
    assert 'id="run-trace-mode">trace=off<' in body


def test_runs_not_finished_are_compared_as_they_stand_and_the_page_reloads(client):
    # An "all hosts" submission lands on the comparison while its runs are queued.
    a = finished()
    queued = Run.objects.create(experiment="syscall-cost", params=PARAMS)
    response = client.get(f"/compare/{a.pk},{queued.pk}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f"run #{queued.pk}</a> (queued)" in body and 'http-equiv="refresh"' in body
    response = client.get(f"/compare/{a.pk},{queued.pk}/bundle.json")
    assert response.status_code == 400 and "has not finished yet" in response.content.decode()
    body = client.get(f"/compare/{a.pk},{finished().pk}/").content.decode()
    assert 'http-equiv="refresh"' not in body and 'id="compare-pending"' not in body


def test_facts_the_runs_report_are_compared_with_the_hosts(client):
    def with_facts(thp, filesystem):
        run = finished()
        run.results += [
            {"metric": "transparent huge pages", "value": thp, "unit": "", "note": "host fact"},
            {"metric": "scratch filesystem", "value": filesystem, "unit": "", "note": "statfs"},
        ]
        run.save()
        return run

    a, b = with_facts("always", "ext4"), with_facts("madvise", "xfs")
    body = client.get(f"/compare/{a.pk},{b.pk}/").content.decode()
    host = body.split('id="host-diff"')[1].split("</table>")[0]
    assert (
        '<tr class="differs"><th>reported: transparent huge pages</th>'
        "<td>always</td><td>madvise</td>" in host
    )
    results = body.split('id="compare-results"')[1].split("</table>")[0]
    assert '<tr class="differs"><th>scratch filesystem</th>' in results
    assert "<tr><th>getppid native</th>" in results  # figures differ by nature: not marked


def test_long_runs_are_drawn_thinned_and_the_page_says_so():
    long = finished()
    SampleChunk.objects.create(
        run=long, seq=2, samples=[[s, x, x] for x in range(3, 1003) for s in ("native", "python")]
    )
    drawn = comparison.overlaid_samples([long, finished()], max_per_run=100)
    mine = [s for s in drawn.samples if s[0] == f"run{long.pk}:native"]
    assert drawn.thinned == {long.pk: 21}  # 2,002 samples, at most 100 drawn
    assert len(mine) == 48 and mine[0][1] == 1 and mine[-1][1] == 988  # end to end, in order
