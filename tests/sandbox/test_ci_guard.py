"""Where CI promises the hostile suite runs, a host that cannot sandbox fails the run."""

import pytest

from tests.sandbox.conftest import skip_or_fail_in_ci


def test_it_fails_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the sandbox tests"):
        skip_or_fail_in_ci("no user namespaces")


def test_it_skips_elsewhere(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        skip_or_fail_in_ci("no user namespaces")
