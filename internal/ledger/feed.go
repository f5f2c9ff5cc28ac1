package ledger

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// Feed is what live subscribers read. The sequencer only announces "the head
// is now N" and copies the committed events into a bounded ring; each
// subscriber pulls what it has not seen, from the ring while it keeps up and
// from the store when it has fallen further behind. So no subscriber can
// block the writer and none can miss an event.
//
// Readers take no lock the writer needs: the ring slots, the head and the
// change channel are atomics. With a read-write mutex, a thousand readers
// on two cores meant the sequencer waited for preempted readers to release
// it on every commit, and append throughput collapsed.
type Feed struct {
	st store.Store

	// ring[id % len(ring)] points to event id while it has not been
	// overwritten. Published events are never modified.
	ring    []atomic.Pointer[event.Event]
	last    atomic.Pointer[store.Head]
	changed atomic.Pointer[chan struct{}]
	closed  atomic.Bool

	mu sync.Mutex // serialises the writers: publish, Advance, close

	storeReads atomic.Int64
}

func newFeed(st store.Store, head store.Head, size int) *Feed {
	f := &Feed{st: st, ring: make([]atomic.Pointer[event.Event], size)}
	f.last.Store(&head)
	ch := make(chan struct{})
	f.changed.Store(&ch)
	return f
}

func (f *Feed) head() store.Head { return *f.last.Load() }

// Head is the id of the last event announced.
func (f *Feed) Head() int64 { return f.last.Load().ID }

// Changed returns a channel that is closed when the head moves past what it
// is now, or when the feed closes (then Closed reports true). Take it before
// reading, so that a move between the read and the wait is not missed.
func (f *Feed) Changed() <-chan struct{} { return *f.changed.Load() }

// Closed reports whether the ledger has shut down: no event will follow.
func (f *Feed) Closed() bool { return f.closed.Load() }

// announce wakes every waiter: the head (stored before) has moved. Called
// with f.mu held.
func (f *Feed) announce() {
	old := f.changed.Load()
	if f.closed.Load() {
		close(*old) // and keep it: every later wait returns at once
		return
	}
	ch := make(chan struct{})
	f.changed.Store(&ch)
	close(*old)
}

func (f *Feed) publish(events []event.Event) {
	if len(events) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// A copy: the caller hands the same events to the appenders.
	events = slices.Clone(events)
	n := int64(len(f.ring))
	for i := range events {
		f.ring[events[i].ID%n].Store(&events[i])
	}
	last := events[len(events)-1]
	if last.ID <= f.last.Load().ID {
		return // Advance announced a later head already
	}
	f.last.Store(&store.Head{ID: last.ID, Hash: last.Hash})
	f.announce()
}

// Advance announces a head moved by another writer (another instance sharing
// the database). Events it does not hold are read from the store.
func (f *Feed) Advance(head store.Head) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if head.ID <= f.last.Load().ID || f.closed.Load() {
		return
	}
	f.last.Store(&head)
	f.announce()
}

func (f *Feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed.Load() {
		f.closed.Store(true)
		f.announce()
	}
}

// Read returns up to max events matching flt with ids in (flt.After, head],
// in id order. It returns no events when the subscriber is up to date; the
// caller then waits on Changed. The second result is the id the caller has
// now seen up to (matching or not), to pass as the next After.
func (f *Feed) Read(ctx context.Context, flt store.Filter, max int) ([]event.Event, int64, error) {
	head := f.last.Load().ID
	if flt.After >= head {
		return nil, flt.After, nil
	}
	n := int64(len(f.ring))
	out := make([]event.Event, 0, min(int64(max), head-flt.After, 64))
	if flt.After+1 > head-n {
		id := flt.After + 1
		for ; id <= head && len(out) < max; id++ {
			e := f.ring[id%n].Load()
			if e == nil || e.ID != id {
				// A hole (an event another instance appended, or
				// one from before a restart), or the writer lapped
				// this reader while it read: the rest comes from
				// storage.
				break
			}
			if matches(flt, e) {
				out = append(out, *e)
			}
		}
		if id > head || len(out) == max {
			return out, id - 1, nil
		}
		flt.After = id - 1
	}

	// Fallen behind the ring: read from storage, up to the head we saw.
	f.storeReads.Add(1)
	flt.Until = head
	seen := flt.After
	err := f.st.Scan(ctx, flt, max-len(out), func(e *event.Event) error {
		out = append(out, *e) // Payload is fresh per event
		seen = e.ID
		return nil
	})
	if err != nil {
		return nil, flt.After, err
	}
	if len(out) < max {
		// The scan found every match up to head.
		seen = head
	}
	return out, seen, nil
}

// StoreReads counts the reads that fell back to storage because the reader
// was behind the ring (or the ring had a hole).
func (f *Feed) StoreReads() int64 { return f.storeReads.Load() }

func matches(flt store.Filter, e *event.Event) bool {
	return in(flt.Kinds, e.Kind) && in(flt.Sources, e.Source)
}

func in(set []string, v string) bool {
	if len(set) == 0 {
		return true
	}
	for _, s := range set {
		if s == v {
			return true
		}
	}
	return false
}
