"""stage_code(): only the sandbox-side code, readable by another uid, and no Django."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from sysops import sandbox
from sysops.sandbox import stage


def staged(dest: Path) -> set[str]:
    return {str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()}


def test_it_copies_the_worker_native_code_and_probes(public_dir):
    dest = public_dir / "code"

    sandbox.stage_code(dest)

    files = staged(dest)
    assert {
        "sysops/__init__.py",
        "sysops/worker/__init__.py",
        "sysops/worker/__main__.py",
        "sysops/worker/emit.py",
        "sysops/experiments/__init__.py",
        "sysops/experiments/hostile/__init__.py",
        "sysops/experiments/hostile/probe.py",
    } <= files
    assert "sysops/native/__init__.py" in files


def test_it_leaves_the_web_side_and_the_sandbox_package_out(public_dir):
    sandbox.stage_code(public_dir / "code")

    files = staged(public_dir / "code")

    assert not any(f.startswith("sysops/sandbox/") for f in files)
    assert not any(
        Path(f).name in {"models.py", "views.py", "spec.py", "settings.py"} for f in files
    )
    # Bytecode only of what was staged, compiled for it: nothing of the source tree's caches.
    sources = {f for f in files if f.endswith(".py")}
    for f in files:
        if "__pycache__" in f:
            path = Path(f)
            source = path.parent.parent / (path.name.split(".")[0] + ".py")
            assert str(source) in sources, f


@pytest.mark.skipif(
    not stage._same_interpreter(), reason="the sandbox's Python is not this one's major.minor"
)
def test_the_sandbox_interpreter_imports_the_staged_bytecode(public_dir):
    """The worker runs with -B in a read-only code dir: without staged bytecode it compiles
    every module it imports on every run. A staged source made unloadable still imports, from
    its bytecode, with the sandbox's interpreter and flags."""
    dest = public_dir / "code"
    sandbox.stage_code(dest)
    module = dest / "sysops" / "worker" / "toolkit" / "stats.py"
    assert (module.parent / "__pycache__").is_dir()
    module.chmod(0o644)
    module.write_text("raise ImportError('compiled from source')\n")
    policy = sandbox.Policy(code_dir=dest)
    done = subprocess.run(
        [
            *sandbox.worker_command(policy)[:-2],
            "-c",
            "import sysops.worker.toolkit.stats as m; print(m.percentile([1, 2, 3], 0.5))",
        ],
        env={"PYTHONPATH": str(dest)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


def test_it_makes_everything_world_readable(public_dir):
    dest = public_dir / "code"
    sandbox.stage_code(dest)

    for path in [dest, *dest.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        executable = path.is_dir() or path.parent == dest / "sysops" / "native" / "bin"
        assert mode == (0o755 if executable else 0o644), path


def test_it_stages_the_go_program_executable(public_dir):
    dest = public_dir / "code"
    sandbox.stage_code(dest)

    program = dest / "sysops" / "native" / "bin" / "sysgo"
    assert stat.S_IMODE(program.stat().st_mode) == 0o755


def test_it_stages_wasmtime_whole_with_its_library_on_the_import_path(public_dir):
    dest = public_dir / "code"
    sandbox.stage_code(dest)

    files = staged(dest)
    assert "wasmtime/__init__.py" in files
    assert "wasmtime/linux-x86_64/_libwasmtime.so" in files
    assert not any(f.startswith("wasmtime/") and "__pycache__" in f for f in files)


def test_it_refuses_a_destination_other_uids_cannot_reach(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)

    with pytest.raises(ValueError, match="not world-traversable"):
        sandbox.stage_code(private / "code")


def test_it_refuses_a_probe_that_imports_django(public_dir, tmp_path):
    source = tmp_path / "src"
    package = source / "sysops" / "experiments" / "web_leak"
    package.mkdir(parents=True)
    (source / "sysops" / "__init__.py").write_text("")
    (source / "sysops" / "experiments" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "probe.py").write_text("from django.conf import settings\n")

    with pytest.raises(ValueError, match="web_leak/probe.py imports Django"):
        sandbox.stage_code(public_dir / "code", source_root=source)
