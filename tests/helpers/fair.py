"""The fair claim order, checked the same way against any database alias (SQLite, PostgreSQL)."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from sysops.models import Run

PARAMS = {"samples": 1}


def queue(using: str, owner: object, n: int, **fields: object) -> list[int]:
    return [
        Run.objects.using(using)
        .create(experiment="synthetic", params=PARAMS, user=owner, **fields)
        .pk
        for _ in range(n)
    ]


def claim_all(using: str, host_name: str) -> list[int]:
    claimed = []
    while (
        run_id := Run.objects.using(using).claim_next(by="t:1", host_name=host_name)
    ) is not None:
        claimed.append(run_id)
    return claimed


def check_round_robin_by_owner(using: str) -> None:
    """A user with 20 queued runs takes turns with another user's single run and with the
    anonymous runs (one owner), in the order each owner queued them."""
    users = get_user_model().objects.db_manager(using)
    alice = users.create_user("alice")
    bob = users.create_user("bob")
    alices = queue(using, alice, 20)
    bobs = queue(using, bob, 1)
    anonymous = queue(using, None, 2)
    assert claim_all(using, "here") == [
        alices[0], bobs[0], anonymous[0],  # each owner's first
        alices[1], anonymous[1],  # then their seconds (bob has none left), oldest first
        *alices[2:],
    ]  # fmt: skip


def check_running_runs_count_against_their_owner(using: str) -> None:
    """An owner whose runs are running waits behind one who has none running."""
    users = get_user_model().objects.db_manager(using)
    alice = users.create_user("alice")
    bob = users.create_user("bob")
    queue(using, alice, 2, status=Run.Status.RUNNING)
    queue(using, alice, 1, status=Run.Status.SUCCEEDED)
    alices = queue(using, alice, 1)
    bobs = queue(using, bob, 2)
    assert claim_all(using, "here") == [bobs[0], bobs[1], alices[0]]


def check_anonymous_runs_take_turns_by_address(using: str) -> None:
    """Without users (a loopback install), each client address is an owner of its own."""
    loop = queue(using, None, 3, client_addr="127.0.0.1")
    other = queue(using, None, 1, client_addr="127.0.0.2")
    assert claim_all(using, "here") == [loop[0], other[0], loop[1], loop[2]]


def check_pinned_runs_go_to_their_host(using: str) -> None:
    anywhere = queue(using, None, 1)
    there = queue(using, None, 1, pinned_host="there")
    here = queue(using, None, 1, pinned_host="here")
    assert claim_all(using, "here") == [anywhere[0], here[0]]
    assert claim_all(using, "there") == there
    claimed_by = Run.objects.using(using).filter(pk__in=anywhere + there + here)
    assert set(claimed_by.values_list("status", flat=True)) == {Run.Status.RUNNING}
