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
- ``hostfacts``: filesystem type and device, THP, sysctls, rlimits, page size, smaps;
- ``sockets``: TCP on the sandbox's loopback (listener, non-blocking connect, whole-message
  send/recv counting calls), /proc/net/tcp decoded, the network namespace;
- ``libc``: ctypes libc with errno, checked calls.
"""
