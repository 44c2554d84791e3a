"""What this host allows: probed at start-up, shown on the dashboard, consulted by start().

Every check runs the real thing where it can (bubblewrap as the sandbox uid, the full sandbox
with its seccomp filter, a cgroup created and removed, strace tracing /usr/bin/true) rather
than guessing from configuration files.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sysops.sandbox.cgroups as cgroups
import sysops.sandbox.uids as uids
from sysops.sandbox.bwrap import BWRAP, SANDBOX_PATH, bwrap_argv, namespaces_argv
from sysops.sandbox.policy import INTERPRETER_FLAGS, Policy, resolved_rlimits
from sysops.sandbox.preexec import child_subreaper, make_preexec
from sysops.sandbox.seccomp import SOCKET_FAMILIES, program_fd

STRACE = "/usr/bin/strace"
SECCOMP_ACTIONS_PATH = Path("/proc/sys/kernel/seccomp/actions_avail")
YAMA_PTRACE_SCOPE_PATH = Path("/proc/sys/kernel/yama/ptrace_scope")
CHECK_TIMEOUT_S = 15.0
LEFTOVER_TIMEOUT_S = 3.0
DETAIL_MAX_CHARS = 300
# A sandbox without these is no sandbox: start() refuses when one fails.
REQUIRED_CHECKS = ("bwrap", "sandbox uid", "namespaces", "sandbox self-test", "seccomp")

# Runs inside the full sandbox; reports what it could and could not do as one JSON line.
SELF_TEST = r"""
import ctypes, errno, json, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def attempt(action):
    try:
        action()
        return "ok"
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))
def unshare_user():
    if libc.unshare(0x10000000) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
status = dict(l.split(":", 1) for l in open("/proc/self/status").read().splitlines())
print(json.dumps({
    "uid": os.getuid(),
    "seccomp_mode": status["Seccomp"].strip(),
    "unshare_user": attempt(unshare_user),
    "vsock": attempt(lambda: socket.socket(40, socket.SOCK_STREAM).close()),
    "raw_icmp": attempt(
        lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()),
    "etc_shadow": attempt(lambda: open("/etc/shadow").close()),
}))
"""


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class HostReport:
    can_sandbox: bool
    reason: str  # why not, when can_sandbox is False; what is missing otherwise
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "can_sandbox": self.can_sandbox,
            "reason": self.reason,
            "checks": [c.to_dict() for c in self.checks],
        }


def probe_host() -> HostReport:
    """Probe bubblewrap, namespaces, seccomp, CAP_NET_RAW, cgroups, ptrace and strace."""
    # bubblewrap leaves its sandbox's pid 1 to the nearest subreaper: be it, and reap it at once
    # rather than wait for the host's init (seconds, in a container).
    with child_subreaper():
        return _probe()


def _probe() -> HostReport:
    try:
        lease = uids.lease_uid()
    except uids.UidUnavailable as exc:
        uid_check = Check("sandbox uid", False, str(exc))
        return HostReport(False, f"cannot sandbox: {uid_check.detail}", [_check_bwrap(), uid_check])
    with lease:
        return _probe_as(lease.uid)


def _probe_as(uid: int) -> HostReport:
    checks = [_check_bwrap(), _check_uid(uid)]
    with tempfile.TemporaryDirectory(prefix="sysops-probe-") as code_dir:
        os.chmod(code_dir, 0o755)
        policy = Policy(code_dir=Path(code_dir))
        checks.append(_check_namespaces(uid))
        checks += _check_full_sandbox(policy, uid)
    checks += [_check_cgroups(uid), _check_ptrace(), _check_strace(uid)]
    if uids.is_dedicated(uid):
        left = uids.reap_until_gone(uid, LEFTOVER_TIMEOUT_S, kill=True)
        if left:  # shown only when something outlived the probe: a host problem worth seeing
            checks.append(Check("probe cleanup", False, f"uid {uid} left: {sorted(left)}"))

    failed = [c for c in checks if c.name in REQUIRED_CHECKS and not c.ok]
    if failed:
        reason = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        return HostReport(False, f"cannot sandbox: {reason}", checks)
    missing = [c.name for c in checks if not c.ok]
    reason = "sandbox available" + (f" (without: {', '.join(missing)})" if missing else "")
    return HostReport(True, reason, checks)


@functools.cache
def cached_host_report() -> HostReport:
    """probe_host() once per process: what start() consults before every run."""
    return probe_host()


@functools.cache
def cached_cgroup_support() -> cgroups.CgroupSupport:
    return cgroups.detect()


def _check_bwrap() -> Check:
    try:
        mode = os.stat(BWRAP).st_mode
        version = _run([BWRAP, "--version"]).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("bwrap", False, f"{BWRAP} not usable: {exc} (install the bubblewrap package)")
    setuid = " (setuid: privileged mode)" if mode & stat.S_ISUID else ""
    return Check("bwrap", True, f"{BWRAP}: {version}{setuid}")


def _check_uid(uid: int) -> Check:
    if uids.is_dedicated(uid):
        uid_range = uids.configured_range()
        return Check(
            "sandbox uid",
            True,
            f"caller is root: each run leases its own unprivileged uid from "
            f"{uid_range.start}..{uid_range.stop - 1} (locks in {uids.LEASE_DIR}; no overlap "
            "with /etc/subuid, /etc/subgid or /etc/passwd)",
        )
    return Check(
        "sandbox uid",
        True,
        f"caller is not root: runs as the caller's uid {uid}, so RLIMIT_NPROC counts the "
        "caller's own processes too",
    )


def _check_namespaces(uid: int) -> Check:
    try:
        result = _run(namespaces_argv(["/usr/bin/true"]), preexec_fn=_drop_to(uid))
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("namespaces", False, f"bwrap could not run: {exc}")
    if result.returncode != 0:
        return Check("namespaces", False, _clip(result.stderr) or f"exit {result.returncode}")
    return Check("namespaces", True, f"user, pid, net, ipc, uts, mount namespaces as uid {uid}")


def _check_full_sandbox(policy: Policy, uid: int) -> list[Check]:
    """Run SELF_TEST in the real sandbox; derive the seccomp, CAP_NET_RAW and secrets checks."""
    command = [policy.python, *INTERPRETER_FLAGS, "-c", SELF_TEST]
    try:
        actions = SECCOMP_ACTIONS_PATH.read_text().split()
    except OSError:
        actions = []
    fd = program_fd()
    try:
        argv = bwrap_argv(policy, command, seccomp_fd=fd)
        result = _run(
            argv,
            pass_fds=(fd,),
            env={"PATH": SANDBOX_PATH},
            preexec_fn=make_preexec(
                limits=resolved_rlimits(policy), cgroup_procs=[], **_uid_args(uid)
            ),
        )
        found = json.loads(result.stdout) if result.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        result, found = None, None
        failure = f"could not run: {exc}"
    else:
        failure = _clip(result.stderr) or f"exit {result.returncode}"
    if found is None:
        return [
            Check("sandbox self-test", False, failure),
            Check("seccomp", False, f"untested (self-test failed); kernel actions: {actions}"),
        ]
    checks = [
        Check(
            "sandbox self-test",
            True,
            f"{policy.python} ran in the full sandbox as inside uid {found['uid']}",
        ),
        Check(
            "seccomp",
            found["seccomp_mode"] == "2"
            and found["unshare_user"] == "EPERM"
            and found["vsock"] == "EAFNOSUPPORT",
            f"filter mode {found['seccomp_mode']}; unshare(CLONE_NEWUSER) -> "
            f"{found['unshare_user']}; socket(AF_VSOCK) -> {found['vsock']} (sockets only of "
            f"{', '.join(SOCKET_FAMILIES)})",
        ),
        Check(
            "net_raw",
            found["raw_icmp"] == "ok",
            "raw ICMP socket inside: "
            + ("ok" if found["raw_icmp"] == "ok" else f"{found['raw_icmp']} (no raw ICMP)"),
        ),
        Check(
            "secrets hidden",
            found["etc_shadow"] == "ENOENT",
            f"/etc/shadow inside: {found['etc_shadow']}",
        ),
    ]
    return checks


def _check_cgroups(uid: int) -> Check:
    support = cgroups.detect()
    refused = "runs are refused (no memory, pids and cpu bound) unless SYSOPS_ALLOW_UNBOUNDED"
    if not support.ok:
        return Check("cgroups", False, f"{support.detail}; {refused}")
    name = f"sysops-probe-{os.getpid()}"
    try:
        cgroup = cgroups.RunCgroup.create(
            support, name, memory_bytes=64 << 20, pids_max=64, cpus=1.0
        )
    except OSError as exc:
        return Check(
            "cgroups", False, f"{support.detail}; cannot create a run cgroup: {exc}; {refused}"
        )
    left = cgroup.remove()
    if left:
        return Check("cgroups", False, f"{support.detail}; probe cgroup not removed: {left}")
    controllers = ", ".join(support.parents)
    return Check("cgroups", True, f"{support.detail}; per-run limits on {controllers}")


def _check_ptrace() -> Check:
    try:
        scope = int(YAMA_PTRACE_SCOPE_PATH.read_text())
    except FileNotFoundError:
        return Check("ptrace", True, "no Yama LSM: a tracer may trace its own children")
    except (OSError, ValueError) as exc:
        return Check("ptrace", False, f"cannot read {YAMA_PTRACE_SCOPE_PATH}: {exc}")
    # 0 and 1 both let a tracer trace the process it starts; 2 needs CAP_SYS_PTRACE, 3 forbids.
    return Check("ptrace", scope <= 1, f"kernel.yama.ptrace_scope = {scope}")


def _check_strace(uid: int) -> Check:
    if shutil.which(STRACE) is None:
        return Check("strace", False, f"{STRACE} missing (install the strace package): no traces")
    try:
        version = _run([STRACE, "--version"]).stdout.splitlines()[0]
        traced = _run(
            [STRACE, "-f", "-qq", "-o", "/dev/null", "/usr/bin/true"], preexec_fn=_drop_to(uid)
        )
    except (OSError, subprocess.SubprocessError, IndexError) as exc:
        return Check("strace", False, f"strace not usable: {exc}")
    if traced.returncode != 0:
        return Check("strace", False, f"{version}; tracing failed: {_clip(traced.stderr)}")
    return Check(
        "strace",
        True,
        f"{version}; traced /usr/bin/true as uid {uid}; traces go through a FIFO only the "
        "run's uid can open (0600 in a 0700 directory)",
    )


def _uid_args(uid: int) -> dict[str, int | None]:
    switch = uids.caller_is_root() and uid != os.geteuid()
    return {"uid": uid if switch else None, "gid": uid if switch else None}


def _drop_to(uid: int) -> Any:
    return make_preexec(limits=[], cgroup_procs=[], **_uid_args(uid))


def _run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("env", {"PATH": SANDBOX_PATH})
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        cwd="/",
        **kwargs,
    )


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_MAX_CHARS else text[: DETAIL_MAX_CHARS - 1] + "…"
