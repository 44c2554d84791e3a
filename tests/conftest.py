import os

import pytest

# The hostile experiment exists only for tests; runners started by tests inherit this.
os.environ.setdefault("SYSOPS_TEST_EXPERIMENTS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")


@pytest.fixture(autouse=True, scope="session")
def _test_experiments(django_test_environment):
    # Settings may have been read before this file set the variable; make sure in-process too.
    from django.conf import settings

    settings.SYSOPS_TEST_EXPERIMENTS = True
