"""Server-side trace search over every stored event of a 200k-event run, stored by the real
parser and recorder: it finds calls from the start of the run, its pages join with no gap and
no repeat, and chunks whose index rules them out are never read."""

import pytest
from django.test import Client

from sysops import selectors
from sysops.models import Run, TraceChunk
from sysops.tracing.search import TraceQuery
from tests.helpers.stored_trace import PIDS, STEP_S, T0_S, store_trace

pytestmark = pytest.mark.django_db
EVENTS = 200_000


@pytest.fixture(scope="module")
def stored_run(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        run = Run.objects.create(
            experiment="workload", params={}, status=Run.Status.RUNNING, trace_mode="full"
        )
        assert store_trace(run, EVENTS) == EVENTS
        run.refresh_from_db()
        yield run
        run.delete()


def every_page(run, query, *, limit, budget_s=selectors.TRACE_SEARCH_BUDGET_S):
    indices, after, pages = [], 0, 0
    while True:
        page = selectors.trace_search(run, query, after=after, limit=limit, budget_s=budget_s)
        pages += 1
        indices += [i for i, _ in page.events]
        assert page.next_index >= after
        after = page.next_index
        if not page.more:
            return indices, pages


def expected(run, predicate):
    return [i for i, e in enumerate(selectors.trace_events(run)) if predicate(e)]


def test_it_stores_each_chunk_with_its_start_and_index(stored_run):
    chunks = list(TraceChunk.objects.filter(run=stored_run).order_by("seq"))
    assert len(chunks) > 50
    position = 0
    for chunk in chunks:
        assert chunk.start == position
        position += chunk.count
        names = {e["name"] for e in chunk.events()}
        assert set(chunk.index["names"]) == names
    assert position == EVENTS


def test_it_finds_the_first_call_of_the_run_by_its_text(stored_run):
    page = selectors.trace_search(stored_run, TraceQuery(text='"/first-call"'))
    assert [i for i, _ in page.events] == [0]
    assert not page.more
    event = page.events[0][1]
    assert event["name"] == "openat" and event["errno"] == "ENOENT"


def test_pages_of_failed_calls_join_with_no_gap_and_no_repeat(stored_run):
    query = TraceQuery(syscall="openat", failed=True)
    want = expected(stored_run, lambda e: e["name"] == "openat" and e["errno"])
    assert want[0] == 0 and len(want) == EVENTS // 1000
    got, pages = every_page(stored_run, query, limit=37)
    assert got == want
    assert pages >= len(want) // 37


def test_failed_calls_alone_are_found_by_their_errno(stored_run):
    want = expected(stored_run, lambda e: e["errno"] or e["cut_short"])
    got, _ = every_page(stored_run, TraceQuery(failed=True), limit=150)
    assert got == want and len(want) == EVENTS // 1000
    page = selectors.trace_search(stored_run, TraceQuery(failed=True), limit=500)
    assert page.scanned == len(want)  # only the failed calls were decoded


def test_pages_cut_by_the_time_budget_join_too(stored_run):
    # A zero budget ends every page after its first chunk, often with no match at all.
    query = TraceQuery(name="write", pid=PIDS[1])
    want = expected(stored_run, lambda e: e["name"] == "write" and e["pid"] == PIDS[1])
    got, pages = every_page(stored_run, query, limit=500, budget_s=0)
    assert got == want
    assert pages > len(want) // 500 + 1


def test_a_time_range_reads_only_the_chunks_it_spans(stored_run):
    # Events 50,000 to 50,099 by their start times.
    query = TraceQuery(ts_from=T0_S + 49_999.5 * STEP_S, ts_to=T0_S + 50_099.5 * STEP_S)
    page = selectors.trace_search(stored_run, query, limit=500)
    assert [i for i, _ in page.events] == list(range(50_000, 50_100))
    assert page.scanned < 10_000  # one or two chunks read, not the 200k events


def test_text_absent_from_a_chunk_spares_parsing_it(stored_run):
    page = selectors.trace_search(stored_run, TraceQuery(text="/missing/199000"))
    assert [i for i, _ in page.events] == [199_000]
    assert page.scanned < 10_000


def test_the_endpoint_pages_and_refuses_bad_input(stored_run):
    client = Client()
    url = f"/runs/{stored_run.pk}/trace-search/"
    first = client.get(url, {"syscall": "openat", "limit": 3}).json()
    assert [e["index"] for e in first["events"]] == [0, 1000, 2000]
    assert first["events"][0]["text"].startswith('openat(AT_FDCWD, "/first-call"')
    assert first["more"] and first["stored"] == EVENTS
    second = client.get(url, {"syscall": "openat", "limit": 3, "after": first["next"]}).json()
    assert [e["index"] for e in second["events"]] == [3000, 4000, 5000]
    # from/to are seconds since the first event, as the pane shows times.
    ranged = client.get(url, {"from": 100_000 * STEP_S - STEP_S / 2, "limit": 1}).json()
    assert [e["index"] for e in ranged["events"]] == [100_000]
    bad = client.get(url, {"pid": "x", "category": "nope"})
    assert bad.status_code == 400
    assert set(bad.json()["errors"]) == {"pid", "category"}
