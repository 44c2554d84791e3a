"""Staging: copy the sandbox-side code to a place the unprivileged sandbox uid can read.

The repository may live under /root (mode 700), which the sandbox uid cannot traverse, and it
holds things the sandbox must not see (settings, the database). Only the code the worker runs is
copied, by a rule a newcomer can check by eye (STAGED_GLOBS).
"""

from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

SYSOPS_DIR = Path(__file__).resolve().parent.parent
DIR_MODE = 0o755
FILE_MODE = 0o644

# Relative to the directory that holds the sysops package. Experiments: a package's __init__.py
# and its probe*.py files only; the web side of an experiment (spec.py, forms) stays out.
STAGED_GLOBS = (
    "sysops/__init__.py",
    "sysops/worker/**/*.py",
    "sysops/native/*.py",
    "sysops/native/*.so",
    "sysops/experiments/__init__.py",
    "sysops/experiments/*/__init__.py",
    "sysops/experiments/*/probe*.py",
)
# A staged module importing Django would fail inside the sandbox (and would mean web code was
# about to run there): refuse at staging time with the file named.
DJANGO_IMPORT = re.compile(r"^\s*(?:from|import)\s+django\b", re.MULTILINE)


def staged_files(source_root: Path | None = None) -> list[Path]:
    """The files stage_code() copies, relative to ``source_root`` (the sysops package's parent)."""
    root = source_root or SYSOPS_DIR.parent
    found: set[Path] = set()
    for pattern in STAGED_GLOBS:
        found.update(p.relative_to(root) for p in root.glob(pattern) if p.is_file())
    return sorted(p for p in found if "__pycache__" not in p.parts)


def stage_code(dest: Path, *, source_root: Path | None = None) -> None:
    """Copy the sandbox-side code into ``dest`` (created if needed): dirs 0755, files 0644.

    ``source_root`` is the directory holding the sysops package (default: this checkout).
    Raises ValueError if a staged module imports Django, or if ``dest`` would not be readable by
    another uid (an ancestor directory not world-traversable).
    """
    dest = Path(dest).resolve()
    root = source_root or SYSOPS_DIR.parent
    files = staged_files(root)
    for rel in files:
        if rel.suffix == ".py" and DJANGO_IMPORT.search((root / rel).read_text()):
            raise ValueError(f"{rel} imports Django; sandbox-side code must not")
    blocked = untraversable_ancestors(dest.parent)
    if blocked:
        raise ValueError(
            f"{dest} is not reachable by the sandbox uid: {', '.join(map(str, blocked))} "
            "not world-traversable; stage under a world-traversable directory such as /tmp"
        )
    dest.mkdir(parents=True, exist_ok=True)
    dest.chmod(DIR_MODE)
    for rel in files:
        target = dest / rel
        for parent in reversed(target.relative_to(dest).parents):
            directory = dest / parent
            directory.mkdir(exist_ok=True)
            directory.chmod(DIR_MODE)
        shutil.copyfile(root / rel, target)
        target.chmod(FILE_MODE)


def untraversable_ancestors(path: Path) -> list[Path]:
    """``path`` and its ancestors that another (unprivileged, unrelated) uid cannot traverse."""
    blocked = []
    for directory in [path, *path.parents]:
        try:
            mode = directory.stat().st_mode
        except FileNotFoundError:
            continue  # to be created by us, with DIR_MODE
        if not mode & stat.S_IXOTH:
            blocked.append(directory)
    return blocked
