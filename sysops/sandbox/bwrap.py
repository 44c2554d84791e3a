"""The bubblewrap command line: a pure function of the policy, so it can be read and tested as data.

bubblewrap is "not a complete sandbox": its protection is exactly these arguments. Around it the
caller adds rlimits, a dedicated host uid, cgroups and the wall-clock limit (see process.py).
"""

from __future__ import annotations

import os

from sysops.sandbox.policy import CODE_MOUNT, SCRATCH_MOUNT, Policy

BWRAP = "/usr/bin/bwrap"

# Read-only system directories. /etc is deliberately absent: nothing secret may be visible, and
# the worker needs none of it (Python runs without it; os-release is read from /usr/lib).
SYSTEM_SYMLINKS = {"/lib": "usr/lib", "/lib64": "usr/lib64", "/bin": "usr/bin", "/sbin": "usr/sbin"}
# The host fingerprint reads mitigations, clocksource and governor from these; -try because a
# host may not have them.
SYSFS_RO_TRY = ("/sys/devices/system/cpu", "/sys/devices/system/clocksource")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
SANDBOX_HOSTNAME = "sandbox"
# Host-wide files of /proc that name the host's other processes or its boot configuration
# (Docker masks the same ones): bound over with an empty file.
PROC_MASKED = ("/proc/cmdline", "/proc/sched_debug", "/proc/timer_list", "/proc/kcore")
# What a sandboxed process can still read about the host, for the dashboard: these are not
# namespaced by the kernel, and the host fingerprint needs the first two.
VISIBLE_INSIDE = (
    "the kernel version and build (uname, /proc/version)",
    "the CPU model, flags, frequency and vulnerabilities (/proc/cpuinfo, /sys/devices/system/cpu)",
    "host-wide load and memory figures (/proc/loadavg, /proc/stat, /proc/meminfo, uptime)",
    "the clocksource (/sys/devices/system/clocksource)",
    "the path the code was staged at, in /proc/self/mountinfo",
)


NAMESPACES = (
    # Explicit: --unshare-all would only *try* a user namespace and could fall back to none.
    "--unshare-user",
    "--unshare-pid",
    "--unshare-net",  # a new netns holds only loopback: nothing leaves the machine
    "--unshare-ipc",
    # A private UTS namespace with a name of its own: the host's is not the sandbox's business
    # (the runner records which host a run ran on).
    "--unshare-uts",
    "--hostname",
    SANDBOX_HOSTNAME,
)


def namespaces_argv(command: list[str]) -> list[str]:
    """The sandbox's namespaces and its view of /usr, and nothing else (no seccomp, no tmpfs):
    the host probe's first question, whether bubblewrap can make them here at all."""
    argv = [BWRAP, *NAMESPACES, "--ro-bind", "/usr", "/usr"]
    for link, target in SYSTEM_SYMLINKS.items():
        argv += ["--symlink", target, link]
    return [*argv, "--proc", "/proc", "--dev", "/dev", "--", *command]


def bwrap_argv(policy: Policy, command: list[str], *, seccomp_fd: int) -> list[str]:
    """bubblewrap argv that runs ``command`` in fresh namespaces under ``policy``."""
    argv = [BWRAP, *NAMESPACES, "--unshare-cgroup-try"]
    if policy.net_raw:
        # Inside uid 0 (mapped to the unprivileged host uid) is what makes CAP_NET_RAW usable:
        # for any other inside uid bubblewrap switches uid through a second, nested user
        # namespace, and a capability there does not count for the netns, which belongs to the
        # first one (socket(AF_INET, SOCK_RAW, ...) then fails with EPERM). Every other
        # capability is dropped and the seccomp filter denies mount and new namespaces, so this
        # root owns nothing but its own loopback.
        argv += ["--uid", "0", "--gid", "0"]
    # /usr/local holds the host's own installs and their configuration (pip, npm): hidden
    # behind an empty tmpfs, read-only below.
    argv += ["--ro-bind", "/usr", "/usr", "--size", "4096", "--tmpfs", "/usr/local"]
    for link, target in SYSTEM_SYMLINKS.items():
        argv += ["--symlink", target, link]
    argv += ["--proc", "/proc"]
    # bubblewrap cannot create a file in procfs: mask only what this kernel has (the sandbox's
    # /proc shows the same kernel's files as the host's).
    for path in PROC_MASKED:
        if os.path.exists(path):
            argv += ["--ro-bind", "/dev/null", path]
    argv += [
        "--dev",
        "/dev",
        "--size",
        str(policy.tmpfs_bytes),
        "--tmpfs",
        "/tmp",
        # bubblewrap's /dev is an unsized tmpfs: without its own tmpfs, /dev/shm would let the
        # sandbox fill host memory.
        "--size",
        str(policy.tmpfs_bytes),
        "--tmpfs",
        "/dev/shm",
    ]
    for path in SYSFS_RO_TRY:
        argv += ["--ro-bind-try", path, path]
    if policy.scratch_dir is not None:
        # Before the root is remounted read-only: bubblewrap creates the mount point there.
        argv += ["--bind", str(policy.scratch_dir), SCRATCH_MOUNT]
    argv += [
        "--ro-bind",
        str(policy.code_dir),
        CODE_MOUNT,
        # The sandbox root and /dev are tmpfs too; read-only, so the only writable places are the
        # two sized tmpfs above (and the scratch directory, when the policy has one).
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/usr/local",
        "--remount-ro",
        "/",
        "--chdir",
        "/tmp",
        "--die-with-parent",
        "--new-session",  # no controlling terminal to push input into (TIOCSTI)
        "--clearenv",
        "--setenv",
        "PYTHONPATH",
        CODE_MOUNT,
        "--setenv",
        "PATH",
        SANDBOX_PATH,
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--cap-drop",
        "ALL",
    ]
    if policy.net_raw:
        argv += ["--cap-add", "CAP_NET_RAW"]
    # No --disable-userns: it breaks raw ICMP; the seccomp filter denies new namespaces instead.
    argv += ["--seccomp", str(seccomp_fd), "--", *command]
    return argv
