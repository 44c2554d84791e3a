import os
import warnings

import pytest

# The hostile experiment exists only for tests; runners started by tests inherit this.
os.environ.setdefault("SYSOPS_TEST_EXPERIMENTS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")


@pytest.fixture(autouse=True, scope="session")
def _test_experiments(django_test_environment):
    # Settings may have been read before this file set the variable; make sure in-process too.
    from django.conf import settings

    settings.SYSOPS_TEST_EXPERIMENTS = True


@pytest.fixture(autouse=True, scope="session")
def _unbounded_where_the_host_has_no_cgroups(django_test_environment):
    """On a host (a CI container, say) where runs cannot get their memory, pids and cpu cgroup,
    the suite runs them with the development switch, loudly, rather than refuse every run;
    the tests of the limits themselves skip there (has_cgroups)."""
    from django.conf import settings

    from sysops.sandbox import cached_host_report

    check = cached_host_report().check("cgroups")
    if check is not None and not check.ok:
        warnings.warn(f"runs are UNBOUNDED in these tests: {check.detail}", stacklevel=1)
        settings.SYSOPS_ALLOW_UNBOUNDED = True
        os.environ["SYSOPS_ALLOW_UNBOUNDED"] = "1"  # for runner and agent processes
