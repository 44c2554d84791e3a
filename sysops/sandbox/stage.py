"""Staging: copy the sandbox-side code to a place the unprivileged sandbox uid can read.

The repository may live under /root (mode 700), which the sandbox uid cannot traverse, and it
holds things the sandbox must not see (settings, the database). Only the code the worker runs is
copied, by a rule a newcomer can check by eye (STAGED_GLOBS), plus the few third-party packages
a probe imports (STAGED_PACKAGES): the worker's interpreter runs with -S, so it sees no
site-packages, and these are staged whole at the top of the code dir, which is on its PYTHONPATH.

Each staged module goes with its bytecode (``__pycache__``), compiled once per process: the
worker runs with -B and cannot write bytecode into its read-only code dir, so without it every
import compiled its module again, a probe's at the start of every run (5-20 ms measured, before
the first figure).
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import re
import shutil
import stat
import sys
from pathlib import Path

from sysops.sandbox.policy import CODE_MOUNT, Policy

SYSOPS_DIR = Path(__file__).resolve().parent.parent
DIR_MODE = 0o755
FILE_MODE = 0o644
EXEC_MODE = 0o755  # files matching EXECUTABLE_GLOBS: programs the probes run

# Relative to the directory that holds the sysops package. Experiments: a package's __init__.py
# and its probe*.py files only; the web side of an experiment (spec.py, forms) stays out.
STAGED_GLOBS = (
    "sysops/__init__.py",
    "sysops/worker/**/*.py",
    "sysops/native/*.py",
    "sysops/native/*.so",
    "sysops/native/bin/*",  # programs built by the set-up (the Go program)
    "sysops/experiments/__init__.py",
    "sysops/experiments/*/__init__.py",
    "sysops/experiments/*/probe*.py",
)
EXECUTABLE_GLOBS = ("sysops/native/bin/*",)
# Third-party packages, found where this interpreter imports them from (the venv), each staged as
# a whole directory at CODE_MOUNT/<name>. wasmtime (the wasm-boundary experiment) carries its
# native library inside its package directory. A package that is not installed is skipped: the
# probe that needs it fails with an ImportError that says so.
STAGED_PACKAGES = ("wasmtime",)
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
    """Copy the sandbox-side code into ``dest`` (created if needed): dirs 0755, files 0644,
    programs (EXECUTABLE_GLOBS) 0755, then the STAGED_PACKAGES.

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
    with_bytecode = _same_interpreter()
    for rel in files:
        target = dest / rel
        for parent in reversed(target.relative_to(dest).parents):
            directory = dest / parent
            directory.mkdir(exist_ok=True)
            directory.chmod(DIR_MODE)
        shutil.copyfile(root / rel, target)
        executable = any(rel.match(pattern) for pattern in EXECUTABLE_GLOBS)
        target.chmod(EXEC_MODE if executable else FILE_MODE)
        if rel.suffix == ".py" and with_bytecode:
            _write_bytecode(root / rel, rel, target)
    for package in STAGED_PACKAGES:
        _stage_package(package, dest)


def warm_up(source_root: Path | None = None) -> None:
    """Compile the staged modules into this process's cache ahead of the first staging (a
    fork server does, so that every spare it forks has them)."""
    root = source_root or SYSOPS_DIR.parent
    if _same_interpreter():
        for rel in staged_files(root):
            if rel.suffix == ".py":
                _bytecode(root / rel, rel)


# source path -> (mtime_ns, size, the .pyc's bytes)
_BYTECODE: dict[Path, tuple[int, int, bytes]] = {}


def _same_interpreter() -> bool:
    """Whether the sandbox's interpreter reads this one's bytecode: the same major.minor."""
    name = os.path.basename(os.path.realpath(Policy.python))
    return name == f"python{sys.version_info.major}.{sys.version_info.minor}"


def _bytecode(source: Path, rel: Path) -> bytes:
    """``source`` compiled as a .pyc whose validity is not checked against the source (PEP 552,
    unchecked hash: the staged source is a copy of the same file), under the name the worker
    imports it by (tracebacks show the staged path)."""
    st = source.stat()
    cached = _BYTECODE.get(source)
    if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
        return cached[2]
    data = source.read_bytes()
    code = compile(data, f"{CODE_MOUNT}/{rel}", "exec", dont_inherit=True)
    pyc = b"".join(
        (
            importlib.util.MAGIC_NUMBER,
            (0b01).to_bytes(4, "little"),  # hash-based, not checked
            importlib.util.source_hash(data),
            marshal.dumps(code),
        )
    )
    _BYTECODE[source] = (st.st_mtime_ns, st.st_size, pyc)
    return pyc


def _write_bytecode(source: Path, rel: Path, target: Path) -> None:
    cache_dir = target.parent / "__pycache__"
    cache_dir.mkdir(exist_ok=True)
    cache_dir.chmod(DIR_MODE)
    pyc = cache_dir / f"{target.stem}.{sys.implementation.cache_tag}.pyc"
    pyc.write_bytes(_bytecode(source, rel))
    pyc.chmod(FILE_MODE)


def package_dir(name: str) -> Path | None:
    """Where this interpreter would import the package ``name`` from; None if it cannot."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _stage_package(name: str, dest: Path) -> None:
    source_dir = package_dir(name)
    if source_dir is None:
        return
    # Its METADATA too, so that importlib.metadata.version(name) works inside (a result row
    # names the version it measured).
    for metadata in source_dir.parent.glob(f"{name}-*.dist-info/METADATA"):
        target = dest / metadata.parent.name / metadata.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(DIR_MODE)
        shutil.copyfile(metadata, target)
        target.chmod(FILE_MODE)
    for source in sorted(source_dir.rglob("*")):
        rel = source.relative_to(source_dir)
        if "__pycache__" in rel.parts:
            continue
        target = dest / name / rel
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(DIR_MODE)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(DIR_MODE)
        # Every run stages afresh, and wasmtime's library is ~30 MB: a hard link costs nothing
        # when the file already has the mode a copy would get (the link shares the inode, so
        # its mode is never changed here); otherwise, or across file systems, a copy.
        if stat.S_IMODE(source.stat().st_mode) == FILE_MODE:
            try:
                os.link(source, target)
                continue
            except OSError:
                pass
        shutil.copyfile(source, target)
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
