"""The README promises only what exists: every environment variable the code reads is there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
READS = re.compile(
    r"""(?:environ\.get|_env_bool|environ\[|getenv)\(?\s*["']([A-Z][A-Z0-9_]+)["']"""
)
NOT_OURS = {"container", "DJANGO_SETTINGS_MODULE", "CI"}


def variables_read() -> set[str]:
    found: set[str] = set()
    for path in [*ROOT.glob("playground/*.py"), *ROOT.glob("sysops/**/*.py")]:
        found |= set(READS.findall(path.read_text()))
    return found - NOT_OURS


def test_every_environment_variable_is_documented():
    readme = (ROOT / "README.md").read_text()
    assert variables_read() >= {"DATABASE_URL", "REDIS_URL", "SYSOPS_TRACE_MAX_EVENTS"}
    assert sorted(v for v in variables_read() if f"`{v}`" not in readme) == []


def test_the_readme_links_only_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#:]+)\)", readme):
        assert (ROOT / target).exists(), target
