package ledger

import (
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
)

// A Waiter wakes one subscriber when an event it may want is published, and
// not otherwise. Changed wakes every waiting subscriber at every commit: with
// ten thousand idle subscribers whose filters matched nothing being
// appended, each commit woke ten thousand goroutines to find nothing, and
// appends were 30 times slower. A Waiter registers under the kinds of its
// filter (else its sources, else everything), and a commit wakes only the
// waiters of the kinds and sources it carries, so an append costs the same
// whatever the number of idle subscribers.
//
// Wake-ups are kept, never lost: a publish between the subscriber's read
// and its wait leaves a token in C. They may be spurious (a kind matches but
// not the source); the subscriber then reads nothing and waits again.
type Waiter struct {
	f    *Feed
	ch   chan struct{}
	keys []string
}

// Watch registers a waiter for events matching flt's kinds and sources. Call
// Stop when done.
func (f *Feed) Watch(flt store.Filter) *Waiter {
	w := &Waiter{f: f, ch: make(chan struct{}, 1)}
	switch {
	case len(flt.Kinds) > 0:
		for _, k := range flt.Kinds {
			w.keys = append(w.keys, "k:"+k)
		}
	case len(flt.Sources) > 0:
		for _, s := range flt.Sources {
			w.keys = append(w.keys, "s:"+s)
		}
	default:
		w.keys = []string{"*"}
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.waiters == nil {
		f.waiters = map[string]map[*Waiter]struct{}{}
	}
	for _, k := range w.keys {
		set := f.waiters[k]
		if set == nil {
			set = map[*Waiter]struct{}{}
			f.waiters[k] = set
		}
		set[w] = struct{}{}
	}
	return w
}

// C receives when an event the waiter may want was published, or when the
// feed closed.
func (w *Waiter) C() <-chan struct{} { return w.ch }

// Stop unregisters the waiter.
func (w *Waiter) Stop() {
	f := w.f
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for _, k := range w.keys {
		if set := f.waiters[k]; set != nil {
			delete(set, w)
			if len(set) == 0 {
				delete(f.waiters, k)
			}
		}
	}
}

func (w *Waiter) poke() {
	select {
	case w.ch <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// wake pokes the waiters that may want one of events.
func (f *Feed) wake(events []event.Event) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if len(f.waiters) == 0 {
		return
	}
	poke := func(key string) {
		for w := range f.waiters[key] {
			w.poke()
		}
	}
	poke("*")
	// A group commit carries few distinct kinds and sources; skip
	// repeats of the previous event's, which is the common run.
	var lastKind, lastSource string
	for i := range events {
		e := &events[i]
		if i == 0 || e.Kind != lastKind {
			poke("k:" + e.Kind)
			lastKind = e.Kind
		}
		if i == 0 || e.Source != lastSource {
			poke("s:" + e.Source)
			lastSource = e.Source
		}
	}
}

// wakeAll pokes every waiter: the feed closed, or moved by events it did not
// see.
func (f *Feed) wakeAll() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for _, set := range f.waiters {
		for w := range set {
			w.poke()
		}
	}
}
