// Package cputime reads the CPU time this process has used. Benchmarks
// report CPU per operation beside wall-clock rates: on a shared machine the
// CPU cost of an operation is far steadier than how long it took.
package cputime

import (
	"syscall"
	"time"
)

// Used returns the user plus system CPU time of the process so far.
func Used() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Meter measures CPU time from its creation.
type Meter struct{ start time.Duration }

// Start returns a running meter.
func Start() Meter { return Meter{start: Used()} }

// PerOp is the CPU time used since Start, in microseconds, divided by ops.
func (m Meter) PerOp(ops int) float64 {
	if ops <= 0 {
		return 0
	}
	return float64(Used()-m.start) / float64(time.Microsecond) / float64(ops)
}
