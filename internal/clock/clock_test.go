package clock_test

import (
	"context"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/clock"
)

func TestManual(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 5, 15, 3, 14, 15, 0, time.UTC)
	m := clock.NewManual(start)
	a, b, stopped := m.NewTimer(time.Second), m.NewTimer(3*time.Second), m.NewTimer(2*time.Second)
	if err := m.WaitTimers(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop of a pending timer, then of a stopped one")
	}
	fired := func(tm clock.Timer) bool {
		select {
		case <-tm.C():
			return true
		default:
			return false
		}
	}
	m.Advance(999 * time.Millisecond)
	if fired(a) || fired(b) {
		t.Fatal("a timer fired before its deadline")
	}
	m.Advance(time.Millisecond)
	if !fired(a) || fired(b) || a.Stop() {
		t.Fatal("at 1 s: the 1 s timer must have fired, and only it")
	}
	m.Advance(5 * time.Second)
	if !fired(b) || fired(stopped) {
		t.Fatal("at 6 s: the 3 s timer must have fired, and the stopped one not")
	}
	if got := m.Now(); !got.Equal(start.Add(6 * time.Second)) {
		t.Fatalf("Now = %v", got)
	}
	if !fired(m.NewTimer(0)) {
		t.Fatal("a timer of 0 must fire at once")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := m.WaitTimers(ctx, 1); err == nil {
		t.Fatal("WaitTimers returned with no timer pending")
	}
}
