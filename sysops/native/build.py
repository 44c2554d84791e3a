"""Build the native extensions: ``python -m sysops.native.build [--force]``.

Every ``sysops/native/_<name>.c`` is one extension module, ``sysops.native._<name>`` (one per
topic: ``_native`` holds the syscall-cost loops; an experiment that needs its own C loops adds
its own file). One ``cc`` invocation each, no setuptools: each file is written against the
limited API (it defines ``Py_LIMITED_API``), so the ``.abi3.so`` built here with any CPython
>= 3.11 also loads in the sandbox's Debian ``/usr/bin/python3``. The ``.so`` files are
git-ignored.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

NATIVE_DIR = Path(__file__).resolve().parent
SOURCE_PATH = NATIVE_DIR / "_native.c"
TARGET_PATH = NATIVE_DIR / "_native.abi3.so"
CFLAGS = ("-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror")


class BuildError(RuntimeError):
    """The extension could not be built; the message says why and what to do."""


def sources() -> list[Path]:
    return sorted(NATIVE_DIR.glob("_*.c"))


def target_of(source: Path) -> Path:
    return source.with_name(f"{source.stem}.abi3.so")


def is_up_to_date(source: Path = SOURCE_PATH) -> bool:
    """The .so is newer than its source and than every shared header (probe_timing.h) here."""
    target = target_of(source)
    if not target.exists():
        return False
    inputs = [source, *NATIVE_DIR.glob("*.h")]
    return target.stat().st_mtime_ns > max(path.stat().st_mtime_ns for path in inputs)


def compile_command(output_path: Path, source: Path = SOURCE_PATH) -> list[str]:
    compiler = shutil.which("cc")
    if compiler is None:
        raise BuildError(
            "no C compiler: `cc` is not on PATH. Install one (Debian: apt-get install gcc) "
            "and run `python -m sysops.native.build` again."
        )
    include_dir = sysconfig.get_paths()["include"]
    if not (Path(include_dir) / "Python.h").exists():
        raise BuildError(
            f"Python.h not found in {include_dir}: install the Python headers "
            f"(Debian: apt-get install python3-dev) for {sys.executable}."
        )
    return [compiler, *CFLAGS, f"-I{include_dir}", str(source), "-o", str(output_path)]


def build(*, force: bool = False) -> list[Path]:
    """Compile every ``_<name>.c`` into ``_<name>.abi3.so`` unless the .so is newer."""
    return [build_one(source, force=force) for source in sources()]


def build_one(source: Path, *, force: bool = False) -> Path:
    target = target_of(source)
    if not force and is_up_to_date(source):
        print(f"up to date: {target} is newer than {source.name}")
        return target
    # Compile beside the target and rename into place, so a worker importing the extension
    # meanwhile sees the old .so or the new one, never a half-written file.
    fd, temp_name = tempfile.mkstemp(dir=NATIVE_DIR, prefix=f".{source.stem}.", suffix=".so")
    os.close(fd)
    temp_path = Path(temp_name)
    try:
        command = compile_command(temp_path, source)
        print("building:", " ".join(command))
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise BuildError(
                f"cc failed with exit status {completed.returncode}:\n"
                f"{completed.stdout}{completed.stderr}"
            )
        temp_path.chmod(0o755)
        temp_path.replace(target)
    finally:
        temp_path.unlink(missing_ok=True)
    print(f"built: {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    try:
        build(force=args.force)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
