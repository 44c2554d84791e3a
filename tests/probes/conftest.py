"""Probe tests run the probes directly, outside the sandbox (see harness.py); the sandboxed
end-to-end path (runner, bubblewrap, tracer) is tested elsewhere."""

from __future__ import annotations

import pytest

from sysops.native import build


@pytest.fixture(scope="session")
def native_extension() -> None:
    """Build the extension if the checkout has none yet (a no-op when it is up to date)."""
    build.build()
