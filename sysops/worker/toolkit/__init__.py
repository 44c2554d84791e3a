"""What probes share, so that a probe reads as the syscalls it makes (lmbench's lib_timing.c
in spirit): sandbox side, standard library only, no Django.

- ``params``: bounded parameter checks (a probe never runs unbounded, whatever the web said);
- ``stats``: distributions (nearest-rank percentiles, reported only where n supports them),
  exact sorted runs for millions of latencies, a log-linear histogram, a reservoir;
- ``rows``: result rows (``{metric, value, unit, note}`` with ``dist``, ``layer``,
  ``ratio_to_native``) and errno rows;
- ``timing``: warm-up and interleaved repetitions, GC paused, samples flushed in bursts;
- ``sweep``: a swept parameter, a least-squares slope and the point where behaviour changes;
- ``harness``: a forked child process (server or client) with control and report pipes;
- ``hostfacts``: filesystem type and device, THP (read from /sys, or inferred from smaps'
  THPeligible inside the sandbox), sysctls, rlimits, page size, smaps;
- ``memory``: the thread's page-fault counters (getrusage), a fault-counting block, RSS; the C
  side's twin, with a monotonic clock and a compiler barrier, is ``sysops/native/probe_timing.h``;
- ``libc``: ctypes libc with errno, checked calls;
- ``inet``: IPv4 and ICMP by hand: the Internet checksum, headers built and parsed, IP options,
  the field layout a packet diagram draws (the web side decodes with it too);
- ``caps``: this process's capability sets, and dropping one (capset) in a child;
- ``netns``: the network namespace's identity and its interfaces' packet counters;
- ``fds``: this process's descriptor table from /proc/self/fd (numbers, targets, CLOEXEC).
- ``sockets``: TCP on the sandbox's loopback (listener, non-blocking connect, whole-message
  send/recv counting calls), /proc/net/tcp decoded.
"""
