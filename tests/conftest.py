import os

# The hostile experiment exists only for tests; runners started by tests inherit this.
os.environ.setdefault("SYSOPS_TEST_EXPERIMENTS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "playground.settings")
