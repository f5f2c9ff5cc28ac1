// Package ledger is the single sequencer of audit-stream. It owns the chain
// head: appends queue to it, and it takes everything waiting, assigns ids,
// timestamps, hashes and Merkle tree hashes in order, commits them in one
// transaction with one fsync, and only then answers every waiter and
// announces the new head to subscribers.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// ErrClosed is returned by Append once the ledger is shutting down.
var ErrClosed = errors.New("ledger: closed")

// Options configures a Ledger.
type Options struct {
	// MaxGroup caps the events committed in one transaction; a single
	// request larger than it is still committed whole. Default 4096.
	MaxGroup int
	// RecentEvents is the capacity of the in-memory ring that serves live
	// subscribers. Default 16384.
	RecentEvents int
	// RecentBytes bounds the memory the ring keeps alive (payloads and
	// their encodings for subscribers); older events are then served from the store.
	// Default 64 MiB.
	RecentBytes int64
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Precision is how finely events are stamped; default microseconds.
	Precision event.TimestampPrecision
	Logger    *slog.Logger
}

// Store is what the ledger needs of the store: the head, the write
// transaction, reads for replays and lagging subscribers, key expiry, and
// the heads other instances commit.
type Store interface {
	Head(ctx context.Context) (store.Head, error)
	Append(ctx context.Context, build store.BuildFunc) ([]store.Record, error)
	Scan(ctx context.Context, f store.Filter, limit int, fn func(*event.Event) error) error
	PruneKeys(ctx context.Context, before time.Time) (int64, error)
	WatchHead(ctx context.Context) <-chan store.Head
}

// Ledger sequences appends. Create it with Open and stop it with Close.
type Ledger struct {
	st   Store
	opt  Options
	log  *slog.Logger
	feed *Feed

	queue chan *pending
	stop  chan struct{}
	done  chan struct{}
	// heads receives the heads committed by any instance sharing the
	// store; stopWatch ends it.
	heads     <-chan store.Head
	stopWatch context.CancelFunc

	closeOnce sync.Once
	mu        sync.RWMutex // guards closed against a racing Append
	closed    bool

	// edge holds the Merkle hashes on the right edge of the tree (its
	// compact range) by stored-hash index, so appends read no hash from
	// the store while this instance is the only writer.
	edge     map[int64]tlog.Hash
	edgeSize int64
	// chain is the provenance record chain's value at edgeSize, kept and
	// reloaded with the edge.
	chain event.Hash

	commits, committed atomic.Int64 // transactions and events, for metrics

	// inflight holds the idempotency keys (scope + key) of the appends
	// between queueing and their answer; see AppendWith.
	imu      sync.Mutex
	inflight map[string]chan struct{}
}

type pending struct {
	ctx    context.Context
	reqs   []event.Request
	opt    AppendOptions
	result chan result

	// Set by build, and reset on every call of it since the store may
	// retry the transaction: how many events this request got in the
	// group (0 for a replay or a refusal), and the outcome of its key.
	n      int
	replay *store.IdempotencyKey
	fail   error
}

type result struct {
	events []event.Event
	replay *store.IdempotencyKey
	err    error
}

// Open reads the head from st and starts the sequencer.
func Open(ctx context.Context, st Store, opt Options) (*Ledger, error) {
	if opt.MaxGroup <= 0 {
		opt.MaxGroup = 4096
	}
	if opt.RecentEvents <= 0 {
		opt.RecentEvents = 16384
	}
	if opt.RecentBytes <= 0 {
		opt.RecentBytes = 64 << 20
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	// Watch before reading the head, so no move after the read is missed.
	wctx, stopWatch := context.WithCancel(context.Background())
	heads := st.WatchHead(wctx)
	head, err := st.Head(ctx)
	if err != nil {
		stopWatch()
		return nil, err
	}
	l := &Ledger{
		heads:     heads,
		stopWatch: stopWatch,
		st:        st,
		opt:       opt,
		log:       opt.Logger,
		feed:      newFeed(st, head, opt.RecentEvents, opt.RecentBytes),
		queue:     make(chan *pending, 1024),
		stop:      make(chan struct{}),
		done:      make(chan struct{}),

		inflight: make(map[string]chan struct{}),
	}
	go l.run()
	return l, nil
}

// Commits reports how many transactions the sequencer has committed and how
// many events they carried: their ratio is the group-commit size.
func (l *Ledger) Commits() (transactions, events int64) {
	return l.commits.Load(), l.committed.Load()
}

// Feed is the read side for live subscribers.
func (l *Ledger) Feed() *Feed { return l.feed }

// Head is the last committed event as this instance knows it.
func (l *Ledger) Head() store.Head { return *l.feed.last.Load() }

// Append durably appends reqs as consecutive events, all or none, and returns
// them as stored. It returns only after the events are fsynced. If ctx ends
// before the events are sequenced nothing is written; once they are, they
// are written whatever ctx does.
func (l *Ledger) Append(ctx context.Context, reqs []event.Request) ([]event.Event, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	r := l.enqueue(ctx, reqs, AppendOptions{})
	return r.events, r.err
}

// enqueue hands reqs to the sequencer and waits for its answer.
func (l *Ledger) enqueue(ctx context.Context, reqs []event.Request, opt AppendOptions) result {
	p := &pending{ctx: ctx, reqs: reqs, opt: opt, result: make(chan result, 1)}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return result{err: ErrClosed}
	}
	select {
	case l.queue <- p:
		l.mu.RUnlock()
	case <-ctx.Done():
		l.mu.RUnlock()
		return result{err: ctx.Err()}
	}
	// Wait for the answer even if ctx ends: the sequencer may already have
	// written the events, and the caller must not report a failure for
	// an event that is in the log.
	return <-p.result
}

// Close stops accepting appends, answers every append already queued, and
// stops the sequencer. It does not close the store.
func (l *Ledger) Close(ctx context.Context) error {
	l.closeOnce.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		close(l.stop)
	})
	select {
	case <-l.done:
		l.feed.close()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Ledger) run() {
	defer close(l.done)
	defer l.stopWatch()
	group := make([]*pending, 0, 256)
	heads := l.heads
	for {
		group = group[:0]
		select {
		case h, ok := <-heads:
			// Another instance moved the head (or this one did: its
			// own commits were published before this select, so the
			// feed ignores them). Subscribers read the events from
			// the store.
			if !ok {
				heads = nil
				continue
			}
			l.feed.advance(h)
			continue
		case p := <-l.queue:
			group = append(group, p)
		case <-l.stop:
			// Nothing can enqueue any more: drain what is queued.
			for {
				select {
				case p := <-l.queue:
					l.commit(append(group[:0], p))
				default:
					return
				}
			}
		}
		n := len(group[0].reqs)
	gather:
		for n < l.opt.MaxGroup {
			select {
			case p := <-l.queue:
				group = append(group, p)
				n += len(p.reqs)
			default:
				break gather
			}
		}
		l.commit(group)
	}
}

// commit writes one group in one transaction and answers its waiters.
func (l *Ledger) commit(group []*pending) {
	live := group[:0]
	for _, p := range group {
		if err := p.ctx.Err(); err != nil {
			p.result <- result{err: err}
			continue
		}
		live = append(live, p)
	}
	if len(live) == 0 {
		return
	}
	clock := l.opt.Now()
	now := l.opt.Precision.Format(clock)
	recs, err := l.st.Append(context.Background(), func(tx store.Tx) ([]store.Record, error) {
		return l.build(tx, live, now, clock)
	})
	if err != nil {
		l.edge = nil // rebuilt from the store on the next build
		if store.IsFull(err) {
			// An operational condition, answered 503; not a fault.
			l.log.Warn("append refused: storage full", "events", countReqs(live), "err", err)
		} else {
			l.log.Error("append failed", "events", countReqs(live), "err", err)
		}
		for _, p := range live {
			p.result <- result{err: fmt.Errorf("ledger: append: %w", err)}
		}
		return
	}
	l.commits.Add(1)
	l.committed.Add(int64(len(recs)))
	events := make([]event.Event, len(recs))
	for i := range recs {
		events[i] = recs[i].Event
	}
	if len(events) > 0 {
		l.feed.publish(events)
	}
	off := 0
	for _, p := range live {
		n := p.n // 0 for a replay or a refused key
		p.result <- result{events: events[off : off+n : off+n], replay: p.replay, err: p.fail}
		off += n
	}
}

func countReqs(group []*pending) int {
	n := 0
	for _, p := range group {
		n += len(p.reqs)
	}
	return n
}

// build assigns ids, hashes and tree hashes to the group on top of the head
// the transaction sees.
func (l *Ledger) build(tx store.Tx, group []*pending, now string, clock time.Time) ([]store.Record, error) {
	head := tx.Head()
	if l.edge == nil || l.edgeSize != head.ID {
		// First append, a failed commit, or another instance moved the
		// head: reload the right edge of the tree from the store.
		edge, err := loadEdge(tx, head.ID)
		if err != nil {
			return nil, err
		}
		chain, err := tx.ChainHead()
		if err != nil {
			return nil, err
		}
		l.edge, l.edgeSize, l.chain = edge, head.ID, chain
	}
	recs := make([]store.Record, 0, countReqs(group))
	id, prev := head.ID, head.Hash
	hr := &edgeReader{edge: l.edge, tx: tx}
	var buf []byte
	chain := l.chain
	var signed map[string]int64 // signatures this group writes, for replays within it
	for _, p := range group {
		p.n, p.replay, p.fail = 0, nil, nil
		if st := p.opt.Stamp; st != nil && len(st.Sigs) > 0 {
			refused, err := l.checkReplay(tx, p, signed)
			if err != nil {
				return nil, err
			}
			if refused {
				continue
			}
		}
		if p.opt.IdempotencyKey != "" {
			write, err := l.claimKey(tx, p, id+1, clock)
			if err != nil {
				return nil, err
			}
			if !write {
				continue
			}
		}
		p.n = len(p.reqs)
		for _, r := range p.reqs {
			id++
			ts := r.Timestamp
			if ts == "" {
				ts = now
			}
			rec := store.Record{Event: event.Event{
				ID: id, Timestamp: ts, Kind: r.Kind, Source: r.Source,
				Payload: r.Payload, PrevHash: prev,
			}}
			rec.Hash, buf = rec.ComputeHash(buf)
			hashes, err := tlog.StoredHashesForRecordHash(id-1, tlog.RecordHash(rec.Hash[:]), hr)
			if err != nil {
				return nil, fmt.Errorf("ledger: tree hashes for event %d: %w", id, err)
			}
			base := tlog.StoredHashIndex(0, id-1)
			for i, h := range hashes {
				hr.edge[base+int64(i)] = h
			}
			rec.Tree = hashes
			recs = append(recs, rec)
			prev = rec.Hash
		}
		if st := p.opt.Stamp; st != nil {
			r := st.record(id-int64(p.n)+1, int64(p.n), prev)
			r.Chain = r.ChainHash(chain)
			if err := tx.PutProvenance(&r); err != nil {
				return nil, err
			}
			chain = r.Chain
			if len(st.Sigs) > 0 && signed == nil {
				signed = make(map[string]int64)
			}
			for i, sig := range st.Sigs {
				signed[string(sig)] = r.FirstID + int64(i)
			}
		}
	}
	l.edge = pruneEdge(hr.edge, id)
	l.edgeSize = id
	l.chain = chain
	return recs, nil
}

// edgeIndexes lists the stored-hash indexes of the compact range of a tree
// of size n: one perfect subtree per set bit of n. They are the only hashes
// a future append can need.
func edgeIndexes(n int64) []int64 {
	var out []int64
	for level := 0; n>>level != 0; level++ {
		if n>>level&1 == 1 {
			out = append(out, tlog.StoredHashIndex(level, n>>level-1))
		}
	}
	return out
}

func loadEdge(tx store.Tx, n int64) (map[int64]tlog.Hash, error) {
	idx := edgeIndexes(n)
	edge := make(map[int64]tlog.Hash, 64)
	if len(idx) == 0 {
		return edge, nil
	}
	hs, err := tx.ReadHashes(idx)
	if err != nil {
		return nil, fmt.Errorf("ledger: load tree edge: %w", err)
	}
	for i, x := range idx {
		edge[x] = hs[i]
	}
	return edge, nil
}

func pruneEdge(all map[int64]tlog.Hash, n int64) map[int64]tlog.Hash {
	edge := make(map[int64]tlog.Hash, 64)
	for _, x := range edgeIndexes(n) {
		if h, ok := all[x]; ok {
			edge[x] = h
		}
	}
	return edge
}

// edgeReader serves tree hashes from the in-memory edge, falling back to
// the transaction for any it lacks.
type edgeReader struct {
	edge map[int64]tlog.Hash
	tx   store.Tx
}

func (r *edgeReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var miss []int64
	for i, x := range indexes {
		h, ok := r.edge[x]
		if !ok {
			miss = append(miss, x)
			continue
		}
		out[i] = h
	}
	if len(miss) == 0 {
		return out, nil
	}
	got, err := r.tx.ReadHashes(miss)
	if err != nil {
		return nil, err
	}
	for i, x := range miss {
		r.edge[x] = got[i]
	}
	for i, x := range indexes {
		out[i] = r.edge[x]
	}
	return out, nil
}
