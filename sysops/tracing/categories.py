"""Which family a syscall belongs to, for colouring the live trace and choosing what to trace.

Six categories, chosen for a learner's eye rather than after strace's own classes (%file, %desc,
%network, ... overlap: read(2) is in none of them, openat(2) is in two):

- ``file``: descriptors and the file system — open/read/write/stat/fsync, but also pipes,
  eventfd, inotify and ioctl, because they make or use descriptors like files do.
- ``memory``: the address space — mmap/munmap/mprotect/brk/madvise and friends.
- ``network``: sockets *and* readiness waiting (select/poll/epoll). The playground waits on
  sockets with them, and a learner reading an epoll server trace wants epoll_wait next to
  accept4 and recvfrom, not in a separate colour.
- ``process``: creating, running, waiting for and ending processes and threads, their ids,
  limits, scheduling, sleeping and futexes (the primitive behind thread joins and locks).
- ``signal``: sending, handling, masking and returning from signals.
- ``other``: clocks and timers, randomness, System V IPC, and every name not listed here.

The table covers x86_64's names (the only architecture the sandbox runs on); a name strace
prints that is not listed here falls in ``other`` rather than failing.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = ("file", "memory", "network", "process", "signal", "other")

_NAMES_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    "file": (
        "open", "openat", "openat2", "creat", "close", "close_range",
        "read", "write", "pread64", "pwrite64", "readv", "writev",
        "preadv", "pwritev", "preadv2", "pwritev2",
        "lseek", "fsync", "fdatasync", "sync", "syncfs", "sync_file_range",
        "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
        "access", "faccessat", "faccessat2",
        "truncate", "ftruncate", "fallocate", "fadvise64", "readahead",
        "dup", "dup2", "dup3", "fcntl", "ioctl", "flock",
        "pipe", "pipe2", "eventfd", "eventfd2", "memfd_create",
        "getdents", "getdents64", "getcwd", "chdir", "fchdir", "chroot", "umask",
        "mkdir", "mkdirat", "rmdir", "mknod", "mknodat",
        "unlink", "unlinkat", "rename", "renameat", "renameat2",
        "link", "linkat", "symlink", "symlinkat", "readlink", "readlinkat",
        "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat",
        "utime", "utimes", "futimesat", "utimensat",
        "sendfile", "splice", "tee", "vmsplice", "copy_file_range",
        "inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
        "fanotify_init", "fanotify_mark",
        "getxattr", "lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr",
        "listxattr", "llistxattr", "flistxattr",
        "removexattr", "lremovexattr", "fremovexattr",
        "name_to_handle_at", "open_by_handle_at",
        "mount", "umount2", "pivot_root",
        "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents",
    ),
    "memory": (
        "mmap", "munmap", "mprotect", "brk", "madvise", "mremap", "msync",
        "mlock", "mlock2", "munlock", "mlockall", "munlockall", "mincore",
        "remap_file_pages", "membarrier", "mbind", "set_mempolicy", "get_mempolicy",
        "migrate_pages", "move_pages", "pkey_alloc", "pkey_free", "pkey_mprotect",
        "process_vm_readv", "process_vm_writev", "process_madvise", "userfaultfd",
    ),
    "network": (
        "socket", "socketpair", "connect", "accept", "accept4", "bind", "listen",
        "shutdown", "getsockname", "getpeername", "setsockopt", "getsockopt",
        "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
        "select", "pselect6", "poll", "ppoll",
        "epoll_create", "epoll_create1", "epoll_ctl",
        "epoll_wait", "epoll_pwait", "epoll_pwait2",
    ),
    "process": (
        "clone", "clone3", "fork", "vfork", "execve", "execveat",
        "wait4", "waitid", "exit", "exit_group",
        "getpid", "getppid", "gettid", "set_tid_address",
        "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
        "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setgroups",
        "setfsuid", "setfsgid", "capget", "capset",
        "getpgid", "setpgid", "getpgrp", "getsid", "setsid",
        "prctl", "arch_prctl", "personality", "seccomp",
        "set_robust_list", "get_robust_list", "rseq", "futex", "futex_waitv",
        "getrlimit", "setrlimit", "prlimit64", "getrusage", "times",
        "sched_yield", "sched_getaffinity", "sched_setaffinity",
        "sched_getscheduler", "sched_setscheduler", "sched_getparam", "sched_setparam",
        "sched_getattr", "sched_setattr", "getpriority", "setpriority",
        "nanosleep", "clock_nanosleep",
        "unshare", "setns", "pidfd_open", "pidfd_getfd", "kcmp", "ptrace",
        "uname", "sethostname", "setdomainname",
    ),
    "signal": (
        "kill", "tkill", "tgkill", "pidfd_send_signal",
        "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend",
        "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
        "sigaltstack", "signalfd", "signalfd4", "pause", "alarm", "restart_syscall",
    ),
    "other": (
        "clock_gettime", "clock_getres", "clock_settime", "clock_adjtime",
        "gettimeofday", "settimeofday", "time", "adjtimex",
        "getitimer", "setitimer", "timer_create", "timer_settime", "timer_gettime",
        "timer_getoverrun", "timer_delete",
        "timerfd_create", "timerfd_settime", "timerfd_gettime",
        "getrandom", "sysinfo", "syslog", "getcpu",
        "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
        "msgget", "msgsnd", "msgrcv", "msgctl",
        "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
    ),
}

SYSCALL_CATEGORY: dict[str, str] = {
    name: category for category, names in _NAMES_BY_CATEGORY.items() for name in names
}


def category_of(syscall: str) -> str:
    """The category of a syscall name; ``other`` for names the table does not list."""
    return SYSCALL_CATEGORY.get(syscall, "other")


def syscalls_in(category: str) -> tuple[str, ...]:
    """The listed syscall names of one category (``other`` gives only its listed names)."""
    if category not in _NAMES_BY_CATEGORY:
        raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    return _NAMES_BY_CATEGORY[category]
