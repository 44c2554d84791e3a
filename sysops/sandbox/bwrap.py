"""The bubblewrap command line: a pure function of the policy, so it can be read and tested as data.

bubblewrap is "not a complete sandbox": its protection is exactly these arguments. Around it the
caller adds rlimits, a dedicated host uid, cgroups and the wall-clock limit (see process.py).
"""

from __future__ import annotations

from sysops.sandbox.policy import CODE_MOUNT, SCRATCH_MOUNT, Policy

BWRAP = "/usr/bin/bwrap"

# Read-only system directories. /etc is deliberately absent: nothing secret may be visible, and
# the worker needs none of it (Python runs without it; os-release is read from /usr/lib).
SYSTEM_SYMLINKS = {"/lib": "usr/lib", "/lib64": "usr/lib64", "/bin": "usr/bin", "/sbin": "usr/sbin"}
# The host fingerprint reads mitigations, clocksource and governor from these; -try because a
# host may not have them.
SYSFS_RO_TRY = ("/sys/devices/system/cpu", "/sys/devices/system/clocksource")
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"


def bwrap_argv(policy: Policy, command: list[str], *, seccomp_fd: int) -> list[str]:
    """bubblewrap argv that runs ``command`` in fresh namespaces under ``policy``."""
    argv = [
        BWRAP,
        # Explicit: --unshare-all would only *try* a user namespace and could fall back to none.
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",  # a new netns holds only loopback: nothing leaves the machine
        "--unshare-ipc",
        # A private UTS namespace but no --hostname: it starts as a copy of the host's, and the
        # worker's fingerprint reports the host name so results can be told apart by host.
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if policy.net_raw:
        # Inside uid 0 (mapped to the unprivileged host uid) is what makes CAP_NET_RAW usable:
        # for any other inside uid bubblewrap switches uid through a second, nested user
        # namespace, and a capability there does not count for the netns, which belongs to the
        # first one (socket(AF_INET, SOCK_RAW, ...) then fails with EPERM). Every other
        # capability is dropped and the seccomp filter denies mount and new namespaces, so this
        # root owns nothing but its own loopback.
        argv += ["--uid", "0", "--gid", "0"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link, target in SYSTEM_SYMLINKS.items():
        argv += ["--symlink", target, link]
    argv += [
        "--proc",
        "/proc",
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
