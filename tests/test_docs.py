"""docs/ stays linked and true: the README points to it, every experiment has a guide, and every
module path the architecture page names exists."""

import re
from pathlib import Path

import pytest

from sysops.experiments import registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_the_readme_links_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert "](docs/README.md)" in readme and "](docs/architecture.md)" in readme


@pytest.mark.parametrize("experiment", registry.catalog(), ids=lambda e: e.slug)
def test_every_experiment_has_a_linked_guide(experiment):
    guide = DOCS / "experiments" / f"{experiment.slug}.md"
    text = guide.read_text()
    assert text.startswith(f"# {experiment.slug} ")
    assert "**What it measures.**" in text and "**How to read it.**" in text
    assert f"](experiments/{experiment.slug}.md)" in (DOCS / "README.md").read_text()


def test_every_path_the_architecture_page_names_exists():
    text = (DOCS / "architecture.md").read_text()
    paths = set(re.findall(r"`((?:sysops|static|bench|tests|templates)/[\w./]+?)`", text))
    assert len(paths) >= 10
    missing = [p for p in sorted(paths) if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, missing
