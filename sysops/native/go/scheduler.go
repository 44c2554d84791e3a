package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// What the probe asks for. The variant names the blocking call:
//
//	syscall_read   read(2) of 1 byte on a pipe the probe fills after block_ms, via syscall.Syscall
//	syscall_sleep  nanosleep(2) via syscall.Syscall
//	raw_sleep      nanosleep(2) via syscall.RawSyscall, resumed after EINTR (the probe sets
//	               GODEBUG=asyncpreemptoff=1 or not)
//	cgo_sleep      nanosleep(3) in C through cgo
//
// A RawSyscall read on a pipe is not offered: if the writer needed this program's P, it would
// never run, and the program would deadlock.
type schedulerParams struct {
	Variant  string `json:"variant"`
	BlockMs  int    `json:"block_ms"`
	LeadMs   int    `json:"lead_ms"` // counting before and after the block
	EventsFd int    `json:"events_fd"`
	PipeFd   int    `json:"pipe_fd"`
	Series   string `json:"series"`
}

type schedulerReport struct {
	Variant        string    `json:"variant"`
	GoVersion      string    `json:"go_version"`
	Gomaxprocs     int       `json:"gomaxprocs"`
	BlockStartMs   float64   `json:"block_start_ms"`
	BlockEndMs     float64   `json:"block_end_ms"`
	EintrAtMs      []float64 `json:"eintr_at_ms"`
	ResumeAfterMs  *float64  `json:"resume_after_ms"` // first count after the block began
	CountInBlock   uint64    `json:"count_in_block"`
	CountPerMs     float64   `json:"count_per_ms"` // the counter's rate before the block
	LongestStallMs float64   `json:"longest_stall_ms"`
	ThreadsStart   int       `json:"threads_start"`
	ThreadsBefore  int       `json:"threads_before"`
	ThreadsAfter   int       `json:"threads_after"`
	Records        int       `json:"records"`
	Samples        int       `json:"samples"`
}

const (
	// The counter records (time, count) once per batch of increments: a few microseconds apart.
	countBatch  = 1 << 12
	maxRecords  = 1 << 20
	maxBlockMs  = 5_000
	maxLeadMs   = 1_000
	chartStepMs = 0.5 // at most one chart sample per half millisecond
	clockNs     = 1e6
)

type record struct {
	at    time.Duration
	count uint64
}

// counter counts in a loop and records its progress; a record is taken only while it runs, so
// a gap in the records is a time it was not scheduled.
type counter struct {
	start   time.Time
	stop    int32
	records []record
	done    chan struct{}
}

func (c *counter) run() {
	// Locked to its thread, the counter can only run there: a hand-off of the P during the
	// block then needs a thread other than both the blocked one and the counter's, which the
	// runtime clones unless an idle one is left from start-up.
	runtime.LockOSThread()
	var n uint64
	for atomic.LoadInt32(&c.stop) == 0 {
		for i := 0; i < countBatch; i++ {
			n++
		}
		c.note(n)
	}
	close(c.done)
}

// note is a real call (not inlined): its prologue is where a cooperative preemption request
// is honoured, so the counter yields to the main goroutine even with async preemption off.
//
//go:noinline
func (c *counter) note(n uint64) {
	if len(c.records) < maxRecords {
		c.records = append(c.records, record{time.Since(c.start), n})
	}
}

func scheduler(in *os.File, out *os.File) error {
	var p schedulerParams
	if err := json.NewDecoder(in).Decode(&p); err != nil {
		return fmt.Errorf("bad parameters: %v", err)
	}
	if p.BlockMs < 1 || p.BlockMs > maxBlockMs || p.LeadMs < 0 || p.LeadMs > maxLeadMs {
		return fmt.Errorf("block_ms %d or lead_ms %d out of bounds", p.BlockMs, p.LeadMs)
	}
	block, err := blocker(p)
	if err != nil {
		return err
	}
	report := schedulerReport{
		Variant:      p.Variant,
		GoVersion:    runtime.Version(),
		Gomaxprocs:   runtime.GOMAXPROCS(0),
		ThreadsStart: threads(),
		EintrAtMs:    []float64{},
	}
	c := &counter{start: time.Now(), records: make([]record, 0, maxRecords), done: make(chan struct{})}
	go c.run()
	// Main sleeps; the counter takes the only P until the runtime preempts it (about 10 ms).
	time.Sleep(time.Duration(p.LeadMs) * time.Millisecond)
	report.ThreadsBefore = threads()
	// Tells the probe the block begins: it counts our threads from outside and, for the pipe,
	// writes after block_ms.
	if err := writeJSON(out, map[string]string{"state": "blocking"}); err != nil {
		return err
	}
	blockStart := time.Since(c.start)
	eintrs, err := block(c.start)
	blockEnd := time.Since(c.start)
	if err != nil {
		return err
	}
	time.Sleep(time.Duration(p.LeadMs) * time.Millisecond)
	atomic.StoreInt32(&c.stop, 1)
	<-c.done
	report.ThreadsAfter = threads()
	report.BlockStartMs = ms(blockStart)
	report.BlockEndMs = ms(blockEnd)
	for _, at := range eintrs {
		report.EintrAtMs = append(report.EintrAtMs, ms(at))
	}
	summarise(&report, c.records, blockStart, blockEnd)
	report.Samples, err = chart(p, c.records)
	if err != nil {
		return err
	}
	return writeJSON(out, report)
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / clockNs }

// blockFunc makes the blocking call and returns when each EINTR interrupted it (since start).
type blockFunc func(start time.Time) ([]time.Duration, error)

func blocker(p schedulerParams) (blockFunc, error) {
	ns := int64(p.BlockMs) * int64(time.Millisecond)
	switch p.Variant {
	case "syscall_read":
		return func(time.Time) ([]time.Duration, error) {
			var buf [1]byte
			_, _, errno := syscall.Syscall(syscall.SYS_READ, uintptr(p.PipeFd), uintptr(unsafe.Pointer(&buf[0])), 1)
			if errno != 0 {
				return nil, fmt.Errorf("read on the pipe: %v", errno)
			}
			return nil, nil
		}, nil
	case "syscall_sleep":
		return func(start time.Time) ([]time.Duration, error) {
			return sleepResuming(ns, start, syscall.Syscall)
		}, nil
	case "raw_sleep":
		return func(start time.Time) ([]time.Duration, error) {
			return sleepResuming(ns, start, syscall.RawSyscall)
		}, nil
	case "cgo_sleep":
		return func(time.Time) ([]time.Duration, error) {
			if errno := cgoSleep(ns); errno != 0 {
				return nil, fmt.Errorf("nanosleep through cgo: %v", errno)
			}
			return nil, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown variant %q", p.Variant)
}

type syscallFunc func(trap, a1, a2, a3 uintptr) (r1, r2 uintptr, err syscall.Errno)

var sleepReq, sleepRem syscall.Timespec // package variables: their addresses never move

// sleepResuming sleeps ns with nanosleep(2) through call, and after an EINTR sleeps the rest,
// noting when each EINTR came.
func sleepResuming(ns int64, start time.Time, call syscallFunc) ([]time.Duration, error) {
	var eintrs []time.Duration
	sleepReq = syscall.NsecToTimespec(ns)
	for {
		_, _, errno := call(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&sleepReq)), uintptr(unsafe.Pointer(&sleepRem)), 0)
		if errno == 0 {
			return eintrs, nil
		}
		if errno != syscall.EINTR {
			return eintrs, fmt.Errorf("nanosleep: %v", errno)
		}
		eintrs = append(eintrs, time.Since(start))
		sleepReq = sleepRem
	}
}

// threads counts this process's OS threads: the entries of /proc/self/task.
func threads() int {
	dir, err := os.Open("/proc/self/task")
	if err != nil {
		return -1
	}
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return -1
	}
	return len(names)
}

// summarise fills in what the records say about the block: how far the counter got while the
// blocking call was in the kernel, when it first ran after the block began, its longest stall.
func summarise(r *schedulerReport, records []record, blockStart, blockEnd time.Duration) {
	r.Records = len(records)
	var atStart, atEnd uint64
	var prev time.Duration
	for i, rec := range records {
		if rec.at <= blockStart {
			atStart = rec.count
			if rec.at > 0 {
				r.CountPerMs = float64(rec.count) / ms(rec.at)
			}
		}
		if rec.at <= blockEnd {
			atEnd = rec.count
		}
		if rec.at > blockStart && r.ResumeAfterMs == nil {
			after := ms(rec.at - blockStart)
			r.ResumeAfterMs = &after
		}
		if i > 0 && ms(rec.at-prev) > r.LongestStallMs {
			r.LongestStallMs = ms(rec.at - prev)
		}
		prev = rec.at
	}
	r.CountInBlock = atEnd - atStart
}

// chart writes the counter's progress as sample events of the worker's protocol (one NDJSON
// line per write on the events fd): x in ms since the start, y the count. The first record of
// each half millisecond, and every record that follows a stall, so a gap keeps its edges.
func chart(p schedulerParams, records []record) (int, error) {
	events := os.NewFile(uintptr(p.EventsFd), "events")
	var lines []byte
	written := 0
	lastMs := -chartStepMs
	var prev time.Duration
	for i, rec := range records {
		at := ms(rec.at)
		stalled := i > 0 && ms(rec.at-prev) >= chartStepMs
		prev = rec.at
		if at-lastMs < chartStepMs && !stalled && i != len(records)-1 {
			continue
		}
		lastMs = at
		event, err := json.Marshal(map[string]any{
			"t": monotonicNs(), "type": "sample", "series": p.Series, "x": at, "y": rec.count,
		})
		if err != nil {
			return written, err
		}
		lines = append(append(lines, event...), '\n')
		written++
		// Flush in bursts, whole lines only, as the worker's own flusher does.
		if len(lines) > 32<<10 {
			if _, err := events.Write(lines); err != nil {
				return written, err
			}
			lines = lines[:0]
		}
	}
	_, err := events.Write(lines)
	return written, err
}

// monotonicNs is CLOCK_MONOTONIC, the clock of the protocol's "t" (Python's time.monotonic_ns).
func monotonicNs() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}
