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
	"github.com/audit-stream/audit-stream/provenance"
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

	// tip is the log's tip as the committer last wrote it (nil after a
	// failure: then read from the store), so appends read no hash from
	// the store while this instance is the only writer. The sequencer
	// learns it from here when it lost track.
	tip atomic.Pointer[chainState]
	// diverged tells the sequencer that a batch it built ahead was not
	// written as built.
	diverged atomic.Bool
	// contended says the last batch found the head moved by another
	// writer (an instance sharing the store): the next one will likely
	// find it moved too, so the sequencer lets the committer build it
	// inside its transaction rather than stop gathering to learn a tip
	// that will be stale.
	contended atomic.Bool

	// The sequencer's own: the tip the last batch handed to the committer
	// will leave (nil: not known), and that batch.
	spec    *chainState
	sending *batch

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

	// Set inside the transaction, and reset on every call of its build
	// function since the store may retry it: how many events this request got in the
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

// run is the sequencer: it takes the appends waiting, stamps them, and
// builds their records (ids, hashes, tree hashes) on the tip the batch
// before will leave, while the committer is still writing that batch; the
// committer writes each batch in one transaction and answers it. Building
// is the sequencer's only work on the critical path that SQLite's writer
// does not need, so on two cores it runs beside the insert and fsync of
// the batch before. While the committer is busy the batch keeps growing
// with whatever arrives, up to MaxGroup events.
func (l *Ledger) run() {
	batches := make(chan *batch)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		l.commitLoop(batches)
	}()
	defer func() {
		close(batches)
		<-committed
		close(l.done)
	}()
	var b *batch // gathered, not yet handed to the committer
	for {
		if b == nil {
			select {
			case p := <-l.queue:
				b = l.newBatch()
				l.add(b, p)
				if len(b.live) == 0 {
					b = nil // its caller was gone
				}
			case <-l.stop:
				l.drain(batches, nil)
				return
			}
			continue
		}
		if b.events >= l.opt.MaxGroup {
			// Full: wait for the committer.
			select {
			case batches <- b:
				l.sent(b)
				b = nil
			case <-l.stop:
				l.drain(batches, b)
				return
			}
			continue
		}
		select {
		case batches <- b:
			l.sent(b)
			b = nil
		case p := <-l.queue:
			l.add(b, p)
		case <-l.stop:
			l.drain(batches, b)
			return
		}
	}
}

// drain commits b and everything still queued; nothing can enqueue any
// more.
func (l *Ledger) drain(batches chan<- *batch, b *batch) {
	for {
		for b == nil || b.events < l.opt.MaxGroup {
			var p *pending
			select {
			case p = <-l.queue:
			default:
			}
			if p == nil {
				break
			}
			if b == nil {
				b = l.newBatch()
			}
			l.add(b, p)
		}
		if b == nil {
			return
		}
		if len(b.live) > 0 {
			batches <- b
			l.sent(b)
		}
		b = nil
	}
}

// A batch is one group on its way to one transaction.
type batch struct {
	live   []*pending
	events int
	clock  time.Time
	now    string
	// done is closed once the committer is through with the batch.
	done chan struct{}

	// Built ahead of the transaction when the sequencer knew the tip it
	// extends: records for every event of live, on top of base, leaving
	// after. after is nil if the committer must build in the transaction.
	base  store.Head
	recs  []store.Record
	provs []provenance.Record // of the requests with a Stamp, in order
	after *chainState
}

// chainState is the log's tip as one goroutine knows it: the head and the
// Merkle tree's right edge (its compact range, and perhaps hashes no longer
// on it), by stored-hash index. Once shared it is never changed (building on
// it copies the edge), so the sequencer and the committer can share it.
type chainState struct {
	head store.Head
	edge map[int64]tlog.Hash
	// chain is the provenance record chain's value at head.
	chain event.Hash
}

func (l *Ledger) newBatch() *batch {
	clock := l.opt.Now()
	return &batch{clock: clock, now: l.opt.Precision.Format(clock), done: make(chan struct{})}
}

// add puts p in b, or answers it at once if its caller is gone, and builds
// its records on the batch's tip if b has one.
func (l *Ledger) add(b *batch, p *pending) {
	if err := p.ctx.Err(); err != nil {
		p.result <- result{err: err}
		return
	}
	b.live = append(b.live, p)
	b.events += len(p.reqs)
	if len(b.live) > 1 && b.after == nil {
		return // the committer builds the whole batch
	}
	from := l.spec
	if len(b.live) > 1 {
		from = b.after
	} else {
		if l.diverged.Swap(false) {
			from = nil
		}
		if from == nil {
			// Learn the tip from the committer: wait for the batch
			// before (a pipeline bubble, only after the committer
			// found the tip other than the sequencer expected).
			if l.sending != nil {
				if l.contended.Load() {
					return // the committer builds the whole batch
				}
				<-l.sending.done
			}
			from = l.tip.Load()
		}
		if from == nil {
			return
		}
		b.base = from.head
	}
	// The batch's own tip, which nothing else sees until it is sent,
	// grows in place; a tip built before is copied.
	recs, provs, after, err := extend(from, b.live[len(b.live)-1:], b.now, edgeReader{}, len(b.live) > 1)
	if err != nil {
		// An edge hash missing: let the committer build it with the
		// store at hand.
		b.recs, b.provs, b.after = nil, nil, nil
		return
	}
	b.recs, b.provs, b.after = append(b.recs, recs...), append(b.provs, provs...), after
}

// sent records that b went to the committer: the next batch extends it.
func (l *Ledger) sent(b *batch) {
	l.sending = b
	l.spec = b.after // nil when the committer builds b: learn it from tip
}

// commitLoop is the committer: it writes each batch the sequencer hands
// it, answers its appends and announces it to subscribers, and follows the
// heads other instances commit.
func (l *Ledger) commitLoop(batches <-chan *batch) {
	defer l.stopWatch()
	heads := l.heads
	for {
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
		case b, ok := <-batches:
			if !ok {
				return
			}
			l.commit(b)
			close(b.done)
		}
	}
}

// errRebuild makes a transaction whose records were built ahead roll back
// so that it can run again, built inside: an idempotency key turned out to
// be stored already, so its request writes nothing and the ids after it
// move.
var errRebuild = errors.New("ledger: rebuild the batch in the transaction")

// commit writes one batch in one transaction and answers its waiters.
func (l *Ledger) commit(b *batch) {
	live := b.live
	if len(live) == 0 {
		return
	}
	var state *chainState
	prebuilt := b.after != nil
	last := l.tip.Load()
	contended := false
	write := func() ([]store.Record, error) {
		return l.st.Append(context.Background(), func(tx store.Tx) ([]store.Record, error) {
			contended = last != nil && tx.Head() != last.head
			if prebuilt && tx.Head() == b.base {
				recs, err := l.claimAhead(tx, b)
				if err == nil {
					state = b.after
				}
				return recs, err
			}
			recs, after, err := l.build(tx, live, b.now, b.clock)
			state = after
			return recs, err
		})
	}
	recs, err := write()
	if errors.Is(err, errRebuild) {
		prebuilt = false
		recs, err = write()
	}
	if !prebuilt || err != nil || state != b.after {
		// The sequencer built on a tip that is not the log's: it must
		// learn the tip again before it builds the next batch.
		l.diverged.Store(true)
	}
	if err != nil {
		l.tip.Store(nil) // read from the store on the next build
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
	l.tip.Store(state)
	l.contended.Store(contended)
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

// claimAhead checks the producer signatures and stores the idempotency keys
// and provenance records of a batch built ahead, and returns its records;
// if a request turns out to write nothing (a signature or a key stored
// already) it returns errRebuild.
func (l *Ledger) claimAhead(tx store.Tx, b *batch) ([]store.Record, error) {
	id := b.base.ID
	var signed map[string]int64
	for _, p := range b.live {
		write, err := l.claim(tx, p, id+1, b.clock, &signed)
		if err != nil {
			return nil, err
		}
		if !write {
			return nil, errRebuild
		}
		id += int64(p.n)
	}
	for i := range b.provs {
		if err := tx.PutProvenance(&b.provs[i]); err != nil {
			return nil, err
		}
	}
	return b.recs, nil
}

// claim runs inside the append transaction, for each request in order. It
// reports whether p appends (and sets p.n); if not, p.replay or p.fail says
// why. firstID is the id p's first event gets if it does; signed collects
// the signatures the transaction writes, for replays within it.
func (l *Ledger) claim(tx store.Tx, p *pending, firstID int64, clock time.Time, signed *map[string]int64) (bool, error) {
	p.n, p.replay, p.fail = 0, nil, nil
	st := p.opt.Stamp
	if st != nil && len(st.Sigs) > 0 {
		refused, err := l.checkReplay(tx, p, *signed)
		if err != nil || refused {
			return false, err
		}
	}
	if p.opt.IdempotencyKey != "" {
		write, err := l.claimKey(tx, p, firstID, clock)
		if err != nil || !write {
			return false, err
		}
	}
	p.n = len(p.reqs)
	if st != nil && len(st.Sigs) > 0 {
		if *signed == nil {
			*signed = make(map[string]int64)
		}
		for i, sig := range st.Sigs {
			(*signed)[string(sig)] = firstID + int64(i)
		}
	}
	return true, nil
}

// build checks the group's signatures, claims its idempotency keys, and
// assigns ids, hashes, tree hashes and provenance records to what it
// writes, on top of the head the transaction sees.
func (l *Ledger) build(tx store.Tx, group []*pending, now string, clock time.Time) ([]store.Record, *chainState, error) {
	head := tx.Head()
	from := l.tip.Load()
	if from == nil || from.head != head {
		// First append, a failed commit, or another instance moved the
		// head: read the right edge of the tree and the provenance
		// chain from the store.
		edge, err := loadEdge(tx, head.ID)
		if err != nil {
			return nil, nil, err
		}
		chain, err := tx.ChainHead()
		if err != nil {
			return nil, nil, err
		}
		from = &chainState{head: head, edge: edge, chain: chain}
	}
	id := head.ID
	write := make([]*pending, 0, len(group))
	var signed map[string]int64
	for _, p := range group {
		ok, err := l.claim(tx, p, id+1, clock, &signed)
		if err != nil {
			return nil, nil, err
		}
		if ok {
			id += int64(p.n)
			write = append(write, p)
		}
	}
	recs, provs, after, err := extend(from, write, now, edgeReader{tx: tx}, false)
	if err != nil {
		return nil, nil, err
	}
	for i := range provs {
		if err := tx.PutProvenance(&provs[i]); err != nil {
			return nil, nil, err
		}
	}
	return recs, after, nil
}

// extend assigns ids, timestamps, hashes and tree hashes to the requests of
// ps, in order, on top of from, and the provenance records of those with a
// Stamp; it returns them and the tip they leave. Hashes the edge lacks come
// from r (an error without a transaction). It copies from's edge, keeping
// only what a future append can need, unless grow says that from is the
// caller's own to change: then it adds to it and returns it (a batch's tip
// as single appends join it one by one).
func extend(from *chainState, ps []*pending, now string, r edgeReader, grow bool) ([]store.Record, []provenance.Record, *chainState, error) {
	if grow {
		r.edge = from.edge
	} else {
		r.edge = pruneEdge(from.edge, from.head.ID)
	}
	n := 0
	for _, p := range ps {
		n += len(p.reqs)
	}
	recs := make([]store.Record, 0, n)
	id, prev, chain := from.head.ID, from.head.Hash, from.chain
	var provs []provenance.Record
	var buf []byte
	for _, p := range ps {
		for _, req := range p.reqs {
			id++
			ts := req.Timestamp
			if ts == "" {
				ts = now
			}
			rec := store.Record{Event: event.Event{
				ID: id, Timestamp: ts, Kind: req.Kind, Source: req.Source,
				Payload: req.Payload, PrevHash: prev,
			}}
			rec.Hash, buf = rec.ComputeHash(buf)
			hashes, err := tlog.StoredHashesForRecordHash(id-1, tlog.RecordHash(rec.Hash[:]), &r)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("ledger: tree hashes for event %d: %w", id, err)
			}
			base := tlog.StoredHashIndex(0, id-1)
			for i, h := range hashes {
				r.edge[base+int64(i)] = h
			}
			rec.Tree = hashes
			recs = append(recs, rec)
			prev = rec.Hash
		}
		if st := p.opt.Stamp; st != nil {
			pr := st.record(id-int64(len(p.reqs))+1, int64(len(p.reqs)), prev)
			pr.Chain = pr.ChainHash(chain)
			chain = pr.Chain
			provs = append(provs, pr)
		}
	}
	return recs, provs, &chainState{head: store.Head{ID: id, Hash: prev}, edge: r.edge, chain: chain}, nil
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
// the transaction for any it lacks, if it has one.
type edgeReader struct {
	edge map[int64]tlog.Hash
	tx   store.Tx
}

// errNoStore reports a hash missing from the edge when building ahead of
// the transaction.
var errNoStore = errors.New("ledger: tree hash not in the edge")

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
	if r.tx == nil {
		return nil, errNoStore
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
