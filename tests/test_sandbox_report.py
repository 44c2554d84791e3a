"""The dashboard's sandbox report says what a user should know about the sandbox's limits."""

import pytest

from sysops import sandbox

pytestmark = pytest.mark.django_db


def test_the_dashboard_says_what_the_sandbox_allows_and_what_it_still_shows(client):
    if not sandbox.cached_host_report().can_sandbox:
        pytest.skip("this host cannot sandbox")
    body = client.get("/").content.decode()

    assert (
        "socket(AF_VSOCK) -&gt; EAFNOSUPPORT (sockets only of AF_UNIX, AF_INET, AF_INET6)" in body
    )
    assert "each run leases its own unprivileged uid" in body or "caller is not root" in body
    bounds = (
        "per-run limits on memory, pids, cpu",
        "Runs are refused: no memory",
        "UNBOUNDED runs",
    )
    assert any(text in body for text in bounds)
    assert "a FIFO only the run&#x27;s uid can open" in body
    assert "events; per run: 500 result rows (2 MiB)" in body
    assert "can still see the kernel version and build" in body
    assert "host-wide load and memory figures" in body
