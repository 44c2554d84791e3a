/*
 * What every native probe module times with (include it after Python.h, which defines
 * _GNU_SOURCE): a monotonic clock in ns, a compiler barrier, and the calling thread's page-fault
 * counters. Header-only and static, so each sysops/native/_<topic>.c stays one translation unit.
 *
 * The pattern, as in _mem.c: take the clock and the fault counters right before the loop and
 * right after it, with the GIL released around both, so that neither Python nor another thread's
 * faults are in the figure.
 */
#ifndef SYSOPS_PROBE_TIMING_H
#define SYSOPS_PROBE_TIMING_H

#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

/* An empty asm with a memory clobber: the compiler may not merge, hoist or drop the memory
 * accesses or calls around it, whatever it believes about their results. */
#define COMPILER_BARRIER() __asm__ __volatile__("" ::: "memory")

static inline int64_t
probe_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct {
    long minor; /* served from memory: a zero page, the page cache, a copy-on-write copy */
    long major; /* needed I/O: a page read from disk or swap */
} probe_faults;

/* RUSAGE_THREAD, not RUSAGE_SELF: only the faults this thread took, none of another thread's. */
static inline probe_faults
probe_thread_faults(void)
{
    struct rusage usage;
    probe_faults out = {0, 0};
    if (getrusage(RUSAGE_THREAD, &usage) == 0) {
        out.minor = usage.ru_minflt;
        out.major = usage.ru_majflt;
    }
    return out;
}

#endif
