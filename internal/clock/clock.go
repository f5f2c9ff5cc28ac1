// Package clock is the time that components wait by: the real one in
// production, a manual one in tests, so that a test of "at most one
// checkpoint per interval" advances the clock instead of sleeping through
// intervals, and cannot be upset by a slow machine.
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer, as time.Timer.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did.
	Stop() bool
}

// Real is the system clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// Manual is a clock that moves only when Advance moves it. Its timers fire
// when the clock reaches their deadline.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	timers  map[*manualTimer]struct{}
	made    []time.Duration
	changed chan struct{} // closed and replaced when the set of timers changes
}

// NewManual returns a manual clock reading now.
func NewManual(now time.Time) *Manual {
	return &Manual{now: now, timers: map[*manualTimer]struct{}{}, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// NewTimer returns a timer that fires once the clock has advanced by d; at
// once if d is not positive.
func (m *Manual) NewTimer(d time.Duration) Timer {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := &manualTimer{m: m, at: m.now.Add(d), c: make(chan time.Time, 1)}
	m.made = append(m.made, d)
	if d <= 0 {
		t.c <- m.now
		return t
	}
	m.timers[t] = struct{}{}
	m.signal()
	return t
}

// Advance moves the clock forward by d and fires every timer due by then.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.now = m.now.Add(d)
	for t := range m.timers {
		if !t.at.After(m.now) {
			t.c <- m.now
			delete(m.timers, t)
		}
	}
	m.signal()
}

// Made returns the durations of every timer made so far, in order.
func (m *Manual) Made() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]time.Duration(nil), m.made...)
}

// WaitTimers waits until at least n timers are pending (made and neither
// fired nor stopped): then whoever made them is waiting on the clock. It
// returns the error of ctx if it ends first.
func (m *Manual) WaitTimers(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		pending, changed := len(m.timers), m.changed
		m.mu.Unlock()
		if pending >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// signal wakes WaitTimers; called with m.mu held.
func (m *Manual) signal() {
	close(m.changed)
	m.changed = make(chan struct{})
}

type manualTimer struct {
	m  *Manual
	at time.Time
	c  chan time.Time
}

func (t *manualTimer) C() <-chan time.Time { return t.c }

func (t *manualTimer) Stop() bool {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	if _, ok := t.m.timers[t]; !ok {
		return false
	}
	delete(t.m.timers, t)
	t.m.signal()
	return true
}
