package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

// A run whose deadline passes before its workers start still sends one
// request from each, so a refused request fails it rather than a run of
// nothing passing.
func TestLoopSendsOncePastItsDeadline(t *testing.T) {
	var calls atomic.Int64
	r := loop(context.Background(), "append", 3, 0, nil, func(ctx context.Context, w int, i int64) (int64, error) {
		calls.Add(1)
		return 0, errors.New("status 401")
	})
	if calls.Load() != 3 || r.Errors != 3 || r.FirstError != "status 401" {
		t.Fatalf("%d calls, result %+v; want one refused request from each of 3 workers", calls.Load(), r)
	}
}
