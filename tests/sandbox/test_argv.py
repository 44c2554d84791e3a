"""bwrap_argv() as data: the sandbox's protection is exactly these arguments."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sysops import sandbox
from sysops.sandbox import bwrap

REPO_DIR = Path(__file__).resolve().parents[2]
STAGED = Path("/tmp/sysops-run-1/code")
COMMAND = ["/usr/bin/python3", "-S", "-m", "sysops.worker"]
BIND_OPTIONS = (
    "--bind",
    "--ro-bind",
    "--bind-try",
    "--ro-bind-try",
    "--dev-bind",
    "--dev-bind-try",
)


def argv(**policy_fields: object) -> list[str]:
    policy = replace(sandbox.Policy(code_dir=STAGED), **policy_fields)
    return sandbox.bwrap_argv(policy, COMMAND, seccomp_fd=7)


def bind_sources(args: list[str]) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg in BIND_OPTIONS]


def option_values(args: list[str], option: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == option]


@pytest.mark.parametrize(
    "flag",
    [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
    ],
)
def test_it_has_flag(flag):
    assert flag in argv()


def test_it_never_disables_user_namespaces():
    # --disable-userns breaks raw ICMP; the seccomp filter denies new namespaces instead.
    assert "--disable-userns" not in argv()


def test_it_binds_no_etc_and_no_repository():
    sources = bind_sources(argv())

    assert sources, "expected some binds"
    for source in sources:
        path = Path(source)
        assert path != Path("/etc") and Path("/etc") not in path.parents
        assert path != REPO_DIR and REPO_DIR not in path.parents
        assert path != Path("/")


def test_it_binds_system_dirs_and_the_staged_code_read_only():
    args = argv()
    pairs = [(args[i + 1], args[i + 2]) for i, arg in enumerate(args) if arg == "--ro-bind"]

    assert ("/usr", "/usr") in pairs
    assert (str(STAGED), "/opt/sysops") in pairs
    assert "--bind" not in args


def test_it_sizes_every_tmpfs():
    args = argv(tmpfs_bytes=1234)
    tmpfs_at = [i for i, arg in enumerate(args) if arg == "--tmpfs"]

    sizes = {args[i + 1]: args[i - 2 : i] for i in tmpfs_at}
    assert sizes == {
        "/tmp": ["--size", "1234"],
        "/dev/shm": ["--size", "1234"],
        "/usr/local": ["--size", "4096"],  # empty, hiding the host's; read-only below
    }


def test_it_names_the_sandbox_and_masks_host_wide_proc_files():
    args = argv()

    assert option_values(args, "--hostname") == ["sandbox"]
    masked = [c for a, b, c in zip(args, args[1:], args[2:], strict=False) if b == "/dev/null"]
    assert "/proc/cmdline" in masked
    assert {path for path in bwrap.PROC_MASKED if Path(path).exists()} <= set(masked)
    assert args.index("--proc") < args.index("/proc/cmdline")


def test_it_clears_the_environment_before_setting_it():
    args = argv()
    setenv_at = [i for i, arg in enumerate(args) if arg == "--setenv"]
    env = {args[i + 1]: args[i + 2] for i in setenv_at}

    assert args.index("--clearenv") < min(setenv_at)
    assert env["PYTHONPATH"] == "/opt/sysops"
    assert env["HOME"] == "/tmp"
    assert env["LANG"] == "C.UTF-8"
    assert "PATH" in env


def test_it_keeps_only_cap_net_raw_and_maps_inside_root():
    args = argv(net_raw=True)

    assert option_values(args, "--cap-drop") == ["ALL"]
    assert option_values(args, "--cap-add") == ["CAP_NET_RAW"]
    assert option_values(args, "--uid") == ["0"]


def test_it_keeps_no_capability_without_net_raw():
    args = argv(net_raw=False)

    assert option_values(args, "--cap-drop") == ["ALL"]
    assert "--cap-add" not in args
    assert "--uid" not in args


def test_it_passes_the_seccomp_fd_and_ends_with_the_command():
    args = argv()

    assert option_values(args, "--seccomp") == ["7"]
    assert args[-len(COMMAND) - 1 :] == ["--", *COMMAND]


def test_it_works_in_tmp_and_makes_the_rest_read_only():
    args = argv()

    assert option_values(args, "--chdir") == ["/tmp"]
    assert set(option_values(args, "--remount-ro")) == {"/", "/dev", "/usr/local"}


def test_the_worker_command_finds_the_staged_code():
    command = sandbox.worker_command(sandbox.Policy(code_dir=STAGED))

    # -I and -E would ignore PYTHONPATH; -S and -P keep site dirs and the cwd out of sys.path.
    assert "-I" not in command and "-E" not in command
    assert {"-S", "-P"} <= set(command)
    assert command[0] == "/usr/bin/python3"
    assert command[-2:] == ["-m", "sysops.worker"]


def test_the_host_probe_asks_for_exactly_the_sandbox_namespaces(tmp_path):
    from sysops.sandbox.bwrap import NAMESPACES, bwrap_argv, namespaces_argv
    from sysops.sandbox.policy import Policy

    probe = namespaces_argv(["/usr/bin/true"])
    full = bwrap_argv(Policy(code_dir=tmp_path), ["/usr/bin/true"], seccomp_fd=3)
    assert probe[1 : 1 + len(NAMESPACES)] == full[1 : 1 + len(NAMESPACES)] == list(NAMESPACES)
    assert probe[-2:] == ["--", "/usr/bin/true"]
