package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
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
	CountPerMs     float64   `json:"count_per_ms"` // the counter's pace while running, before
	RanInBlockMs   float64   `json:"ran_in_block_ms"`
	LongestStallMs float64   `json:"longest_stall_ms"`
	ThreadsStart   int       `json:"threads_start"`
	ThreadsBefore  int       `json:"threads_before"`
	ThreadsAfter   int       `json:"threads_after"`
	Records        int       `json:"records"`
	Samples        int       `json:"samples"`
}

const (
	// The counter records (time, count) once per batch of increments: a few microseconds apart.
	countBatch = 1 << 12
	maxRecords = 1 << 20
	maxBlockMs = 5_000
	maxLeadMs  = 1_000
	// Goroutines parked on their own threads to leave none idle (see occupyIdleThreads).
	maxHolders  = 8
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

func scheduler(params []byte, out *os.File) error {
	var p schedulerParams
	if err := json.Unmarshal(params, &p); err != nil {
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
	// Two readings of one clock (CLOCK_MONOTONIC): monoNow for the block's edges, read where
	// no preemption can intervene, and time.Since(start) for the counter's cheap records.
	startMono := monoNow()
	c := &counter{start: time.Now(), records: make([]record, 0, maxRecords), done: make(chan struct{})}
	go c.run()
	// Main sleeps; the counter takes the only P until the runtime preempts it (about 10 ms).
	time.Sleep(time.Duration(p.LeadMs) * time.Millisecond)
	occupyIdleThreads()
	report.ThreadsBefore = threads()
	// Tells the probe the block begins: it counts our threads from outside and, for the pipe,
	// writes after block_ms.
	if err := writeJSON(out, map[string]string{"state": "blocking"}); err != nil {
		return err
	}
	blockStart := monoNow() - startMono
	eintrs, blockEnd, err := block()
	blockEnd -= startMono
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
		report.EintrAtMs = append(report.EintrAtMs, ms(at-startMono))
	}
	summarise(&report, c.records, blockStart, blockEnd)
	report.Samples, err = chart(p, c.records, blockStart)
	if err != nil {
		return err
	}
	return writeJSON(out, report)
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / clockNs }

// occupyIdleThreads parks goroutines, each locked to the thread it ran on, until parking one
// made the runtime clone a thread for main: then no thread is idle, and the hand-off of the P
// during the block needs a new one. The clone the runtime makes then is visible in the thread
// count and the trace, rather than hidden in a thread left idle by start-up (one to three
// here, by chance: a thread is cloned when sysmon retakes the P from a call that was slow at
// that moment). Each holder takes the thread main was running on; main moves to an idle
// thread, or a new one.
func occupyIdleThreads() {
	for i := 0; i < maxHolders; i++ {
		before := threads()
		ready := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			ready <- struct{}{}
			select {} // parks for good; its thread stays locked to it, not idle
		}()
		<-ready
		if threads() > before {
			return
		}
	}
}

// blockFunc makes the blocking call; it returns when each EINTR interrupted it and when the
// call came back (monoNow), read at once after the kernel returned.
type blockFunc func() (eintrs []time.Duration, end time.Duration, err error)

func blocker(p schedulerParams) (blockFunc, error) {
	ns := int64(p.BlockMs) * int64(time.Millisecond)
	switch p.Variant {
	case "syscall_read":
		return func() ([]time.Duration, time.Duration, error) {
			_, _, errno := syscall.Syscall(syscall.SYS_READ, uintptr(p.PipeFd), uintptr(unsafe.Pointer(&pipeByte[0])), 1)
			end := monoNow()
			if errno != 0 {
				return nil, end, fmt.Errorf("read on the pipe: %v", errno)
			}
			return nil, end, nil
		}, nil
	case "syscall_sleep":
		return func() ([]time.Duration, time.Duration, error) {
			return sleepResuming(ns, syscall.Syscall)
		}, nil
	case "raw_sleep":
		return func() ([]time.Duration, time.Duration, error) {
			return sleepResuming(ns, syscall.RawSyscall)
		}, nil
	case "cgo_sleep":
		return func() ([]time.Duration, time.Duration, error) {
			errno := cgoSleep(ns)
			end := monoNow()
			if errno != 0 {
				return nil, end, fmt.Errorf("nanosleep through cgo: %v", errno)
			}
			return nil, end, nil
		}, nil
	}
	return nil, fmt.Errorf("unknown variant %q", p.Variant)
}

type syscallFunc func(trap, a1, a2, a3 uintptr) (r1, r2 uintptr, err syscall.Errno)

// Package variables: their addresses never move, so passing them as uintptr is safe.
var (
	pipeByte           [1]byte
	sleepReq, sleepRem syscall.Timespec
)

// sleepResuming sleeps ns with nanosleep(2) through call; after an EINTR it notes the time,
// passes a preemption point (as almost any code after an EINTR would: a function call) and
// sleeps the time left.
func sleepResuming(ns int64, call syscallFunc) ([]time.Duration, time.Duration, error) {
	var eintrs []time.Duration
	sleepReq = syscall.NsecToTimespec(ns)
	for {
		_, _, errno := call(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&sleepReq)), uintptr(unsafe.Pointer(&sleepRem)), 0)
		end := monoNow()
		if errno == 0 {
			return eintrs, end, nil
		}
		if errno != syscall.EINTR {
			return eintrs, end, fmt.Errorf("nanosleep: %v", errno)
		}
		eintrs = append(eintrs, end)
		preemptionPoint()
		sleepReq = sleepRem
	}
}

// preemptionPoint is an ordinary call: its prologue honours a pending preemption request.
//
//go:noinline
func preemptionPoint() {}

// monoNow reads CLOCK_MONOTONIC with a raw system call from a nosplit function: no preemption
// point, so a goroutine back from a blocking call reads the time before the runtime can take
// its P away (time.Now would be an ordinary call, where it can).
//
//go:nosplit
func monoNow() time.Duration {
	var ts syscall.Timespec
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Sec*1e9 + ts.Nsec)
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
// blocking call was in the kernel (and so how long it ran, at its usual pace), when it first
// ran after the block began, its longest stall.
func summarise(r *schedulerReport, records []record, blockStart, blockEnd time.Duration) {
	r.Records = len(records)
	var atStart, atEnd uint64
	var paces []float64
	for i, rec := range records {
		if rec.at <= blockStart {
			atStart = rec.count
			// The pace while it runs: one batch over the time since the last record.
			if i > 0 && rec.at > records[i-1].at {
				paces = append(paces, countBatch/ms(rec.at-records[i-1].at))
			}
		}
		if rec.at <= blockEnd {
			atEnd = rec.count
		}
		if rec.at > blockStart && r.ResumeAfterMs == nil {
			after := ms(rec.at - blockStart)
			r.ResumeAfterMs = &after
		}
		if i > 0 && ms(rec.at-records[i-1].at) > r.LongestStallMs {
			r.LongestStallMs = ms(rec.at - records[i-1].at)
		}
	}
	r.CountInBlock = atEnd - atStart
	if len(paces) > 0 {
		sort.Float64s(paces)
		r.CountPerMs = paces[len(paces)/2]
		r.RanInBlockMs = float64(r.CountInBlock) / r.CountPerMs
	}
}

// chart writes the counter's progress as sample events of the worker's protocol (NDJSON lines,
// whole lines per write, on the events fd): x in ms since the blocking call began, y the count.
// The first record of each half millisecond, and every record that follows a stall, so a gap
// keeps its edges.
func chart(p schedulerParams, records []record, blockStart time.Duration) (int, error) {
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
			"t": int64(monoNow()), "type": "sample", "series": p.Series,
			"x": math.Round((at-ms(blockStart))*1e3) / 1e3, // µs resolution
			"y": rec.count,
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
