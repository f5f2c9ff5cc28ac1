package ledger

import (
	"context"
	"errors"
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
//
// Each event is encoded for the wire once, when it is published, and the
// same bytes go to every subscriber (Subscription.Read): with a thousand
// subscribers, encoding per subscriber (hex of two hashes, string escaping)
// was a thousand encodings of every event. The feed does not know the wire
// format: the reader brings its Encoder when it subscribes. With no
// subscriber at all the sequencer skips that work, and a reader who arrives
// later encodes what it reads.
type Feed struct {
	st store.Scanner

	// ring[id % len(ring)] points to event id while it has not been
	// overwritten. Published entries are never modified.
	ring    []atomic.Pointer[entry]
	last    atomic.Pointer[store.Head]
	changed atomic.Pointer[chan struct{}]
	closed  atomic.Bool

	mu sync.Mutex // serialises the writers: publish, advance, close

	// The ring is bounded in bytes as well as in slots: a few thousand
	// events of a megabyte each would otherwise pin gigabytes. Guarded by
	// mu. Entries older than oldest have been dropped (their slots hold
	// nil or a newer event); readers then fall back to storage.
	maxBytes int64
	bytes    int64
	oldest   int64

	storeReads  atomic.Int64
	subscribers atomic.Int64
	// encoder is the Encoder of the latest subscription: publish encodes
	// with it while there are subscribers.
	encoder atomic.Pointer[Encoder]

	// Waiters by what wakes them (waiter.go); guarded by wmu, which is
	// taken after mu, never before.
	wmu     sync.Mutex
	waiters map[string]map[*Waiter]struct{}
}

// Encoder renders an event in the form live subscribers are served (the HTTP
// layer's is the Server-Sent Events frame). Its identity is that of the
// pointer: bytes encoded by one Encoder are only ever served to readers that
// subscribed with the same one.
type Encoder struct {
	// Append appends e's encoding to dst.
	Append func(dst []byte, e *event.Event) []byte
	// Size estimates the length of e's encoding, to size buffers.
	Size func(e *event.Event) int
}

// Subscription is a live reader of encoded events; see Feed.Subscribe.
type Subscription struct {
	f    *Feed
	enc  *Encoder
	once sync.Once
}

// Subscribe registers a live reader that is served events encoded by enc
// until it closes the subscription: while there is one, publish encodes
// every event once for all of them.
func (f *Feed) Subscribe(enc *Encoder) *Subscription {
	f.encoder.Store(enc)
	f.subscribers.Add(1)
	return &Subscription{f: f, enc: enc}
}

// Close ends the subscription; it may be called more than once.
func (s *Subscription) Close() {
	s.once.Do(func() { s.f.subscribers.Add(-1) })
}

// entry is a published event with its encoding (nil if it was published
// while nobody subscribed) and the Encoder that made it.
type entry struct {
	ev      event.Event
	enc     *Encoder
	encoded []byte
	size    int64 // what the entry keeps alive, for the byte bound
}

// entryOverhead approximates the fixed cost of an entry: the struct, the
// hashes, the timestamp, the encoding's fixed part.
const entryOverhead = 256

// readBytes bounds the payload bytes one Read or Subscription.Read returns (at
// least one event is always returned): a subscriber catching up from
// storage over large events must not load hundreds of megabytes at once.
const readBytes = 4 << 20

func newFeed(st store.Scanner, head store.Head, size int, maxBytes int64) *Feed {
	f := &Feed{st: st, ring: make([]atomic.Pointer[entry], size), maxBytes: maxBytes, oldest: head.ID + 1}
	f.last.Store(&head)
	ch := make(chan struct{})
	f.changed.Store(&ch)
	return f
}

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
	// Copies (the caller hands the same events to the appenders), and the
	// encodings of the whole batch in one buffer, made before taking the
	// lock.
	ents := make([]entry, len(events))
	for i := range events {
		e := &events[i]
		ents[i].ev = *e
		ents[i].size = int64(len(e.Payload)+len(e.Kind)+len(e.Source)+len(e.Timestamp)) + entryOverhead
	}
	if enc := f.encoder.Load(); enc != nil && f.subscribers.Load() > 0 {
		size := 0
		for i := range events {
			size += enc.Size(&events[i])
		}
		buf := make([]byte, 0, size)
		for i := range events {
			start := len(buf)
			buf = enc.Append(buf, &events[i])
			ents[i].enc = enc
			ents[i].encoded = buf[start:len(buf):len(buf)]
			ents[i].size += int64(len(ents[i].encoded))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := int64(len(f.ring))
	for i := range ents {
		slot := &f.ring[ents[i].ev.ID%n]
		if old := slot.Load(); old != nil {
			f.bytes -= old.size
		}
		slot.Store(&ents[i])
		f.bytes += ents[i].size
	}
	last := events[len(events)-1]
	f.evict(last.ID)
	if last.ID <= f.last.Load().ID {
		return // advance announced a later head already
	}
	f.last.Store(&store.Head{ID: last.ID, Hash: last.Hash})
	f.announce()
	f.wake(events)
}

// evict drops the oldest entries until the ring is within its byte bound;
// newest is the last id published. An event larger than the whole bound is
// dropped at once: subscribers read it from storage. Called with f.mu held.
func (f *Feed) evict(newest int64) {
	n := int64(len(f.ring))
	// Slots before newest-n+1 were overwritten, their bytes released.
	f.oldest = max(f.oldest, newest-n+1)
	for f.bytes > f.maxBytes && f.oldest <= newest {
		slot := &f.ring[f.oldest%n]
		if e := slot.Load(); e != nil && e.ev.ID == f.oldest {
			slot.Store(nil)
			f.bytes -= e.size
		}
		f.oldest++
	}
}

// advance announces a head moved by another writer (another instance sharing
// the database, as PostgreSQL allows). Events it does not hold are read from
// the store.
func (f *Feed) advance(head store.Head) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if head.ID <= f.last.Load().ID || f.closed.Load() {
		return
	}
	f.last.Store(&head)
	f.announce()
	f.wakeAll() // events this instance never saw: anyone may want them
}

func (f *Feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed.Load() {
		f.closed.Store(true)
		f.announce()
		f.wakeAll()
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
	out := make([]event.Event, 0, min(int64(max), head-flt.After, 64))
	seen, err := f.read(ctx, head, flt, max,
		func(e *entry) { out = append(out, e.ev) },
		func(e *event.Event) { out = append(out, *e) }, // Payload is fresh per event
	)
	if err != nil {
		return nil, seen, err
	}
	return out, seen, nil
}

// Read is Feed.Read for a subscriber: it appends to dst the encodings of the
// events Feed.Read would return. The encodings of events in the ring are
// shared by every subscriber and must not be modified.
func (s *Subscription) Read(ctx context.Context, flt store.Filter, max int, dst [][]byte) ([][]byte, int64, error) {
	f := s.f
	head := f.last.Load().ID
	if flt.After >= head {
		return dst, flt.After, nil
	}
	// Events not encoded at publish by this subscription's Encoder (read
	// from storage, or published while nobody subscribed) are encoded into
	// one buffer and put in place at the end, since the buffer may move
	// while it grows.
	var buf []byte
	type slot struct{ at, end int }
	var slots []slot
	encode := func(e *event.Event) {
		buf = s.enc.Append(buf, e)
		slots = append(slots, slot{len(dst), len(buf)})
		dst = append(dst, nil)
	}
	seen, err := f.read(ctx, head, flt, max,
		func(e *entry) {
			if e.enc != s.enc {
				encode(&e.ev)
				return
			}
			dst = append(dst, e.encoded)
		},
		encode,
	)
	start := 0
	for _, sl := range slots {
		dst[sl.at] = buf[start:sl.end:sl.end]
		start = sl.end
	}
	return dst, seen, err
}

// read walks the matching events in (flt.After, head], up to max of them:
// first those in the ring (ringFn), then, from where the ring cannot serve
// the reader, those in storage (storeFn). It returns the id read up to.
func (f *Feed) read(ctx context.Context, head int64, flt store.Filter, max int, ringFn func(*entry), storeFn func(*event.Event)) (int64, error) {
	n := int64(len(f.ring))
	got, bytes := 0, 0
	if flt.After+1 > head-n {
		id := flt.After + 1
		for ; id <= head && got < max && bytes < readBytes; id++ {
			e := f.ring[id%n].Load()
			if e == nil || e.ev.ID != id {
				// A hole (an event another instance appended, or
				// one from before a restart), or the writer lapped
				// this reader while it read: the rest comes from
				// storage.
				break
			}
			if flt.Matches(&e.ev) {
				ringFn(e)
				got++
				bytes += len(e.ev.Payload)
			}
		}
		if id > head || got == max || bytes >= readBytes {
			return id - 1, nil
		}
		flt.After = id - 1
	}

	// Fallen behind the ring: read from storage, up to the head we saw.
	f.storeReads.Add(1)
	flt.Until = head
	flt.Desc = false
	// A filter the store checks row by row (a payload path without an
	// index, a text search) may pass many events per match: one read
	// examines a bounded number and reports how far it got.
	flt.MaxScan = readScanLimit
	seen := flt.After
	full := false
	err := f.st.Scan(ctx, flt, max-got, func(e *event.Event) error {
		storeFn(e)
		got++
		seen = e.ID
		if bytes += len(e.Payload); bytes >= readBytes {
			full = true
			return errReadFull
		}
		return nil
	})
	var lim *store.ScanLimitError
	if errors.As(err, &lim) {
		return lim.Last, nil
	}
	if err != nil && err != errReadFull {
		return flt.After, err
	}
	if got < max && !full {
		// The scan found every match up to head.
		seen = head
	}
	return seen, nil
}

// readScanLimit bounds the events one storage read examines.
const readScanLimit = 1 << 16

// errReadFull stops a scan that has read readBytes.
var errReadFull = errors.New("ledger: read is full")

// StoreReads counts the reads that fell back to storage because the reader
// was behind the ring (or the ring had a hole).
func (f *Feed) StoreReads() int64 { return f.storeReads.Load() }
