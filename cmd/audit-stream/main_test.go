package main

import (
	"context"
	"os"
	"testing"

	"github.com/audit-stream/audit-stream/internal/loadgen"
)

// TestMain lets this test binary stand in for audit-stream in the processes
// the load tool starts from its own binary (the fan-out's subscribers, the
// soak's server), as the real binary does.
func TestMain(m *testing.M) {
	if os.Getenv(loadgen.ChildEnv) != "" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
