"""What a failed call's errno means, for a learner reading a trace, and where to read more.

:func:`describe` gives the C library's message (``os.strerror``) and, for the errors people
meet most in these experiments, one line on what usually causes it. strace prints some
kernel-internal codes (ERESTARTSYS and friends) that ``errno`` does not know; they are covered
too, because they show up whenever a signal interrupts a blocking call.
"""

from __future__ import annotations

import errno as errno_module
import os
from dataclasses import dataclass

# Kernel-internal "restart" codes: never returned to a program, but strace shows them when a
# signal interrupts a call (include/linux/errno.h).
_KERNEL_ONLY: dict[str, tuple[int, str]] = {
    "ERESTARTSYS": (512, "To be restarted if SA_RESTART is set"),
    "ERESTARTNOINTR": (513, "To be restarted"),
    "ERESTARTNOHAND": (514, "To be restarted if no handler"),
    "ERESTART_RESTARTBLOCK": (516, "Interrupted by signal"),
}

_EXPLANATIONS: dict[str, str] = {
    "EPERM": "The operation needs a privilege the process lacks (a capability, or being root); "
    "inside the sandbox many are dropped on purpose.",
    "ENOENT": "A path (or one of its directories) does not exist; programs probe for optional "
    "files this way all the time, so it is often harmless.",
    "ESRCH": "No process or thread has that id: it already exited (and was reaped) or never "
    "existed.",
    "EINTR": "A signal arrived while the call was blocked and its handler ran; the call gave "
    "up and the program is expected to retry.",
    "EIO": "A low-level input/output error from the device or file system.",
    "ENXIO": "The device or address does not exist, e.g. opening a FIFO for writing when no "
    "one has it open for reading with O_NONBLOCK.",
    "E2BIG": "The argument list (or environment) passed to execve is too long.",
    "ENOEXEC": "The file is not in an executable format the kernel recognises.",
    "EBADF": "The file descriptor is not open, or not open for this kind of access (e.g. "
    "writing to a read-only descriptor).",
    "ECHILD": "There is no child to wait for: all children were already reaped, or there "
    "never were any.",
    "EAGAIN": "The call would have to block and the descriptor is non-blocking (same as "
    "EWOULDBLOCK): try again when poll/epoll says it is ready.",
    "ENOMEM": "The kernel could not allocate memory, or an address-space limit "
    "(RLIMIT_AS, the sandbox's cgroup) was reached.",
    "EACCES": "Permission denied by the file's mode bits or a directory on the path; "
    "privileges do not help here, unlike EPERM.",
    "EFAULT": "A pointer argument points outside the process's accessible address space.",
    "EBUSY": "The resource is in use (a mounted file system, a locked device).",
    "EEXIST": "The file already exists and O_CREAT|O_EXCL (or mkdir, link) required that it "
    "did not.",
    "EXDEV": "The operation cannot cross file systems, e.g. rename(2) between two mounts.",
    "ENODEV": "No such device, or the file system type is not supported.",
    "ENOTDIR": "A component of the path that should be a directory is not one.",
    "EISDIR": "The path is a directory where a file was needed (e.g. opening it for writing).",
    "EINVAL": "An argument is invalid: an unknown flag, a bad size or alignment, or a "
    "combination the call does not accept.",
    "ENFILE": "The whole system has hit its limit on open files.",
    "EMFILE": "This process has hit its own limit on open descriptors (RLIMIT_NOFILE, "
    "see ulimit -n).",
    "ENOTTY": "An ioctl was used on something that is not a terminal or does not support "
    "it; the C library's isatty() check causes this constantly.",
    "ETXTBSY": "The executable is open for writing, so it cannot be run (or vice versa).",
    "EFBIG": "The file would grow beyond the maximum size (RLIMIT_FSIZE or the file "
    "system's limit).",
    "ENOSPC": "The device (or tmpfs, or quota) has no space left.",
    "ESPIPE": "Seeking is impossible on a pipe, socket or FIFO.",
    "EROFS": "The file system is mounted read-only (as the sandbox mounts system directories).",
    "EMLINK": "Too many links to the file, or too many subdirectories.",
    "EPIPE": "Writing to a pipe or socket whose reading end is closed; the process also "
    "gets SIGPIPE unless it ignores it.",
    "ERANGE": "A result does not fit the buffer or type provided.",
    "EDEADLK": "Taking the lock would deadlock.",
    "ENAMETOOLONG": "A path or one of its components is longer than the system allows.",
    "ENOSYS": "The kernel does not implement this syscall, or a seccomp filter pretends it "
    "does not (the C library then falls back to an older call).",
    "ENOTEMPTY": "The directory is not empty, so it cannot be removed or renamed over.",
    "ELOOP": "Too many symbolic links while resolving the path, or O_NOFOLLOW met one.",
    "ENODATA": "No data available, e.g. an extended attribute that is not set.",
    "ETIME": "A timer expired.",
    "EOVERFLOW": "A value is too large for the type that should hold it.",
    "ENOTSOCK": "A socket call was given a descriptor that is not a socket.",
    "EDESTADDRREQ": "A send on an unconnected datagram socket needs a destination address.",
    "EMSGSIZE": "The message is too large to send in one piece on this socket.",
    "EPROTOTYPE": "The protocol does not match the socket type.",
    "ENOPROTOOPT": "The socket option (or its level) is not supported by this protocol.",
    "EPROTONOSUPPORT": "The protocol is not supported (or not available in this network "
    "namespace).",
    "EOPNOTSUPP": "The operation is not supported on this socket or file.",
    "EAFNOSUPPORT": "The address family (IPv6, a raw family) is not supported here.",
    "EADDRINUSE": "The address and port are already bound, or a recent connection holds it "
    "in TIME_WAIT (SO_REUSEADDR lets a server rebind).",
    "EADDRNOTAVAIL": "The address is not local to this host (or namespace), or no ephemeral "
    "port is left.",
    "ENETDOWN": "The network interface is down.",
    "ENETUNREACH": "No route to that network; inside the sandbox only loopback exists.",
    "ECONNABORTED": "The connection was aborted before accept() took it.",
    "ECONNRESET": "The peer reset the connection (it closed with unread data, or crashed).",
    "ENOBUFS": "The kernel ran out of buffer space for the socket.",
    "EISCONN": "The socket is already connected.",
    "ENOTCONN": "The socket is not connected (or was shut down).",
    "ETIMEDOUT": "The connection or operation timed out, e.g. no answer to SYN.",
    "ECONNREFUSED": "Nobody listens on that address and port: the peer answered the "
    "connection attempt with a reset.",
    "EHOSTUNREACH": "No route to the host.",
    "EALREADY": "A non-blocking connect is already in progress on this socket.",
    "EINPROGRESS": "A non-blocking connect has started and will finish later: wait for the "
    "socket to become writable, then read SO_ERROR.",
    "ECANCELED": "The operation was cancelled.",
    "EOWNERDEAD": "The owner of a robust mutex died while holding it.",
    "ERESTARTSYS": "Interrupted by a signal; the kernel restarts the call by itself after "
    "the handler if it was installed with SA_RESTART, otherwise it fails with EINTR.",
    "ERESTARTNOINTR": "Interrupted by a signal; the kernel restarts the call by itself.",
    "ERESTARTNOHAND": "Interrupted by a signal; restarted if no handler ran, EINTR otherwise.",
    "ERESTART_RESTARTBLOCK": "A sleep interrupted by a signal; it resumes through "
    "restart_syscall(2) with the time that was left.",
}

# Syscall names whose manual page has another name. Names not listed have a page of their own.
_MAN_PAGE_ALIASES: dict[str, str] = {
    "newfstatat": "fstatat",
    "fstatat64": "fstatat",
    "pread64": "pread",
    "pwrite64": "pwrite",
    "fadvise64": "posix_fadvise",
    "prlimit64": "prlimit",
    "rt_sigaction": "sigaction",
    "rt_sigprocmask": "sigprocmask",
    "rt_sigreturn": "sigreturn",
    "rt_sigsuspend": "sigsuspend",
    "rt_sigpending": "sigpending",
    "rt_sigtimedwait": "sigtimedwait",
    "pselect6": "select",
    "ppoll": "poll",
    "epoll_pwait": "epoll_wait",
    "epoll_pwait2": "epoll_wait",
    "epoll_create1": "epoll_create",
    "accept4": "accept",
    "dup3": "dup",
    "pipe2": "pipe",
    "clone3": "clone",
    "getdents64": "getdents",
    "umount2": "umount",
    "faccessat2": "faccessat",
    "signalfd4": "signalfd",
    "eventfd2": "eventfd",
    "inotify_init1": "inotify_init",
    "mlock2": "mlock",
    "renameat2": "renameat",
    "sync_file_range2": "sync_file_range",
}


@dataclass(frozen=True, slots=True)
class ErrnoInfo:
    """An errno name with its number, the C library's message and a learner's explanation."""

    name: str
    code: int | None
    message: str
    explanation: str


def describe(name: str) -> ErrnoInfo:
    """What ``name`` (e.g. ``"ENOENT"``) means. Unknown names get an honest placeholder."""
    code = getattr(errno_module, name, None)
    if isinstance(code, int):
        message = os.strerror(code)
    elif name in _KERNEL_ONLY:
        code, message = _KERNEL_ONLY[name]
    else:
        return ErrnoInfo(
            name,
            None,
            "Unknown error",
            "strace reported an error this host's C library does not name.",
        )
    # Aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK) share the canonical name's text.
    canonical = errno_module.errorcode.get(code, name)
    explanation = _EXPLANATIONS.get(name) or _EXPLANATIONS.get(canonical) or message + "."
    return ErrnoInfo(name, code, message, explanation)


def man_page(syscall: str) -> str:
    """The manual page that documents a syscall, e.g. ``"openat(2)"``, ``"fstatat(2)"``."""
    return f"{_MAN_PAGE_ALIASES.get(syscall, syscall)}(2)"


def help_tables() -> dict[str, dict[str, object]]:
    """What the trace pane needs to explain a line: errno explanations and man page aliases."""
    names = [*_EXPLANATIONS, *_KERNEL_ONLY]
    errnos = {}
    for name in names:
        info = describe(name)
        errnos[name] = {"code": info.code, "message": info.message, "explanation": info.explanation}
    return {"errnos": errnos, "man_aliases": dict(_MAN_PAGE_ALIASES)}
