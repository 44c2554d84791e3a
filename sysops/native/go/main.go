// Command sysgo: the Go side of the syscall experiments, run by the probes inside the sandbox.
//
//	sysgo version     the Go release it was built with
//	sysgo serve       syscall-cost's Go layers: one JSON request a line on stdin
//	                  ({"layer", "call", "iterations", "fd"}), one JSON reply a line on stdout
//	                  ({"elapsed_ns"} or {"error"}), so the probe interleaves the Go layers with
//	                  its own repetition by repetition.
//	sysgo scheduler   go-scheduler: one goroutine blocks in a system call while another counts;
//	                  parameters as JSON in its argument (not on stdin: a read that blocks at
//	                  start would leave the runtime an idle thread, hiding the clone to come), the counter's progress as sample events on the
//	                  worker's events fd, the summary as one JSON line on stdout.
//
// Standard library and cgo only: the set-up builds it offline with Debian's golang-go.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sysgo serve|scheduler PARAMS|version")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Stdin, os.Stdout)
	case "scheduler":
		if len(os.Args) != 3 {
			err = fmt.Errorf("scheduler: parameters (JSON) expected as the only argument")
		} else {
			err = scheduler([]byte(os.Args[2]), os.Stdout)
		}
	case "version":
		fmt.Println(runtime.Version())
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sysgo:", err)
		os.Exit(1)
	}
}

func writeJSON(out *os.File, value any) error {
	data, err := json.Marshal(value)
	if err != nil {
		return err
	}
	_, err = out.Write(append(data, '\n'))
	return err
}
