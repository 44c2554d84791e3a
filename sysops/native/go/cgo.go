package main

/*
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

// One libc call each, as a C program would make it; clock_gettime goes through syscall(2) so
// that, like every other layer, it enters the kernel (libc's clock_gettime would use the vDSO).
static long sysgo_getppid(void) { return getppid(); }
static long sysgo_read(int fd, void *buf) { return read(fd, buf, 1); }
static long sysgo_write(int fd, const void *buf) { return write(fd, buf, 1); }
static long sysgo_clock_gettime(struct timespec *ts) {
	return syscall(SYS_clock_gettime, CLOCK_MONOTONIC, ts);
}

// Sleeps for the whole duration, resuming after a signal as a C program would.
static int sysgo_sleep(long ns) {
	struct timespec req = {ns / 1000000000L, ns % 1000000000L}, rem;
	while (nanosleep(&req, &rem) != 0) {
		if (errno != EINTR) return errno;
		req = rem;
	}
	return 0;
}
*/
import "C"

import (
	"syscall"
	"time"
	"unsafe"
)

// cgoLoop makes n calls through cgo, one loop per call so that the loop holds nothing but the
// call; each crossing costs the runtime's entersyscall/exitsyscall plus the switch to the
// system stack, on top of libc's own call. Returns the elapsed time and the last result.
func cgoLoop(call string, n int, fd int, buf []byte) (time.Duration, int64) {
	var last C.long
	var ts syscall.Timespec
	start := time.Now()
	switch call {
	case "getppid":
		for i := 0; i < n; i++ {
			last = C.sysgo_getppid()
		}
	case "read":
		p := unsafe.Pointer(&buf[0])
		for i := 0; i < n; i++ {
			last = C.sysgo_read(C.int(fd), p)
		}
	case "write":
		p := unsafe.Pointer(&buf[0])
		for i := 0; i < n; i++ {
			last = C.sysgo_write(C.int(fd), p)
		}
	default:
		p := (*C.struct_timespec)(unsafe.Pointer(&ts))
		for i := 0; i < n; i++ {
			last = C.sysgo_clock_gettime(p)
		}
	}
	return time.Since(start), int64(last)
}

func cgoSleep(ns int64) syscall.Errno {
	return syscall.Errno(C.sysgo_sleep(C.long(ns)))
}
