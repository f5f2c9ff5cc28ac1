package store

import (
	"errors"
	"syscall"
)

// ErrFull marks a write refused because the storage is full (the disk, a
// quota, a tablespace). Backends wrap their own "disk full" errors with it so
// that callers can answer 503 and keep serving reads instead of failing as if
// the log were broken.
var ErrFull = errors.New("store: storage full")

// IsFull reports whether err says the storage is full: ErrFull, or an ENOSPC
// or EDQUOT from the operating system that a backend passed on unwrapped.
func IsFull(err error) bool {
	return errors.Is(err, ErrFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// ErrUnavailable marks an operation that failed because the storage could
// not be reached (a database restarting or failing over, a broken
// connection): nothing is known to be wrong with the log, and a retry after a
// moment may succeed. The HTTP layer answers 503 with Retry-After.
var ErrUnavailable = errors.New("store: storage unavailable")
