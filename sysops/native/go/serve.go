package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"
)

type request struct {
	Layer      string `json:"layer"`
	Call       string `json:"call"`
	Iterations int    `json:"iterations"`
	Fd         int    `json:"fd"`
}

type reply struct {
	ElapsedNs int64  `json:"elapsed_ns,omitempty"`
	Error     string `json:"error,omitempty"`
}

// The probe bounds iterations; this bound keeps a bad request from running unbounded.
const maxIterations = 10_000_000

const clockMonotonic = 1

var (
	ioByte  = []byte{'x'}
	clockTs syscall.Timespec
)

var callNumbers = map[string]uintptr{
	"getppid":       syscall.SYS_GETPPID,
	"read":          syscall.SYS_READ,
	"write":         syscall.SYS_WRITE,
	"clock_gettime": syscall.SYS_CLOCK_GETTIME,
}

func serve(in io.Reader, out *os.File) error {
	lines := bufio.NewScanner(in)
	for lines.Scan() {
		var req request
		var answer reply
		if err := json.Unmarshal(lines.Bytes(), &req); err != nil {
			answer.Error = fmt.Sprintf("bad request: %v", err)
		} else if elapsed, err := measure(req); err != nil {
			answer.Error = err.Error()
		} else {
			answer.ElapsedNs = elapsed.Nanoseconds()
		}
		if err := writeJSON(out, answer); err != nil {
			return err
		}
	}
	return lines.Err()
}

func measure(req request) (time.Duration, error) {
	number, ok := callNumbers[req.Call]
	if !ok {
		return 0, fmt.Errorf("unknown call %q", req.Call)
	}
	if req.Iterations < 1 || req.Iterations > maxIterations {
		return 0, fmt.Errorf("iterations %d outside 1..%d", req.Iterations, maxIterations)
	}
	// The arguments every call gets: fd and a 1-byte buffer for read and write, the clock and
	// a timespec for clock_gettime, nothing for getppid (the extra arguments are ignored).
	// Both live in package variables, which never move, so holding their addresses as
	// uintptr across the loop is safe (a stack variable could move when the stack grows).
	a1, a2, a3 := uintptr(req.Fd), uintptr(unsafe.Pointer(&ioByte[0])), uintptr(1)
	if req.Call == "clock_gettime" {
		a1, a2, a3 = clockMonotonic, uintptr(unsafe.Pointer(&clockTs)), 0
	}
	var elapsed time.Duration
	var errno syscall.Errno
	switch req.Layer {
	case "go_syscall":
		start := time.Now()
		for i := 0; i < req.Iterations; i++ {
			_, _, errno = syscall.Syscall(number, a1, a2, a3)
		}
		elapsed = time.Since(start)
	case "go_raw":
		start := time.Now()
		for i := 0; i < req.Iterations; i++ {
			_, _, errno = syscall.RawSyscall(number, a1, a2, a3)
		}
		elapsed = time.Since(start)
	case "cgo":
		var last int64
		elapsed, last = cgoLoop(req.Call, req.Iterations, req.Fd, ioByte)
		if last < 0 {
			return 0, fmt.Errorf("%s via cgo failed", req.Call)
		}
	default:
		return 0, fmt.Errorf("unknown layer %q", req.Layer)
	}
	// Checking the last call keeps the loop bare; these calls on these files do not fail
	// intermittently.
	if errno != 0 {
		return 0, fmt.Errorf("%s via %s: %v", req.Call, req.Layer, errno)
	}
	return elapsed, nil
}
