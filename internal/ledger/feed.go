package ledger

import (
	"context"
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
type Feed struct {
	st store.Store

	mu      sync.RWMutex
	ring    []event.Event // ring[id % len(ring)] holds event id while id > last-len(ring)
	last    store.Head
	changed chan struct{}
	closed  bool

	storeReads atomic.Int64
}

func newFeed(st store.Store, head store.Head, size int) *Feed {
	return &Feed{st: st, ring: make([]event.Event, size), last: head, changed: make(chan struct{})}
}

func (f *Feed) head() store.Head {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.last
}

// Head is the id of the last event announced.
func (f *Feed) Head() int64 { return f.head().ID }

// Changed returns a channel that is closed when the head moves past what it
// is now, or when the feed closes (then Closed reports true).
func (f *Feed) Changed() <-chan struct{} {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.changed
}

// Closed reports whether the ledger has shut down: no event will follow.
func (f *Feed) Closed() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.closed
}

func (f *Feed) publish(events []event.Event) {
	if len(events) == 0 {
		return
	}
	f.mu.Lock()
	n := int64(len(f.ring))
	for _, e := range events {
		f.ring[e.ID%n] = e
	}
	last := events[len(events)-1]
	f.last = store.Head{ID: last.ID, Hash: last.Hash}
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

// Advance announces a head moved by another writer (another instance sharing
// the database). Events it does not hold are read from the store.
func (f *Feed) Advance(head store.Head) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if head.ID <= f.last.ID || f.closed {
		return
	}
	f.last = head
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *Feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.changed)
	}
}

// Read returns up to max events matching flt with ids in (flt.After, head],
// in id order. It returns no events when the subscriber is up to date; the
// caller then waits on Changed. The second result is the id the caller has
// now seen up to (matching or not), to pass as the next After.
func (f *Feed) Read(ctx context.Context, flt store.Filter, max int) ([]event.Event, int64, error) {
	f.mu.RLock()
	head := f.last.ID
	n := int64(len(f.ring))
	oldest := head - n + 1
	if flt.After >= head {
		f.mu.RUnlock()
		return nil, flt.After, nil
	}
	var out []event.Event
	if flt.After+1 >= oldest {
		id := flt.After + 1
		for ; id <= head && len(out) < max; id++ {
			e := &f.ring[id%n]
			if e.ID != id {
				// A hole: an event another instance appended, or
				// one from before a restart. Read the rest from
				// storage.
				break
			}
			if matches(flt, e) {
				out = append(out, *e)
			}
		}
		if id > head || len(out) == max {
			f.mu.RUnlock()
			return out, id - 1, nil
		}
		flt.After = id - 1
	}
	f.mu.RUnlock()

	// Fallen behind the ring: read from storage, up to the head we saw.
	f.storeReads.Add(1)
	flt.Until = head
	seen := flt.After
	err := f.st.Scan(ctx, flt, max-len(out), func(e *event.Event) error {
		c := *e
		c.Payload = append([]byte(nil), e.Payload...)
		out = append(out, c)
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
