// Package postgres is the PostgreSQL backend of the store, for several
// stateless audit-stream instances sharing one database.
//
// Appends from every instance serialise on a transaction-level advisory
// lock: each instance's sequencer takes the lock, reads the head, lets the
// ledger build the group on top of it, writes it (one INSERT of column
// arrays, or a binary COPY for a large group: copy.go), announces the new
// head with NOTIFY and commits, which releases the lock. So the chain stays
// one chain whichever instance a producer reaches, and a lock is never held
// beyond one transaction (a killed instance's lock dies with its session).
// While one instance is the only writer, its groups are built ahead on the
// head it last left and each transaction is one pipeline, checked under the
// lock (Store.appendAhead).
// Every instance LISTENs for the heads and wakes its subscribers.
//
// Durability is PostgreSQL's: Append returns after COMMIT, which with
// synchronous_commit = on (the default) means the WAL is flushed on the
// primary, and with a synchronous standby (synchronous_standby_names and
// synchronous_commit = on or remote_apply) also on the standby.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/provenance"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"
)

// Options configures Open.
type Options struct {
	Logger *slog.Logger
	// ReadURL, if set, is a read replica of the database that serves the
	// store Reads returns; ReadWait is how long such a read waits for the
	// replica to hold the events it needs (default DefaultReadWait).
	ReadURL  string
	ReadWait time.Duration
}

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	schema  string
	channel string // NOTIFY channel of this schema's heads
	lockKey int64  // advisory lock of this schema's appends

	rep *replica // nil without a read replica

	heads      store.HeadWatchers
	stopListen context.CancelFunc
	listenDone chan struct{}

	hasTokens  atomic.Bool // see HasTokens
	tokenReads tokenReads

	imu            sync.RWMutex
	payloadIndexes []string // dotted paths with an expression index

	times store.TimeMap // timerange.go: time ranges to id ranges
	stats tableStats    // stats.go

	// own is the head this instance's last append left, and sending the
	// one the append in flight will leave; ahead is the head the next
	// append may assume without reading it (see appendAhead), nil once
	// another instance is known to have moved it; foreign is when another
	// instance last announced a head (Unix nanoseconds).
	own, sending, ahead atomic.Pointer[store.Head]
	foreign             atomic.Int64
	quiet               time.Duration // aheadQuiet
	copyMin             int           // defaultCopyMin

	mu     sync.Mutex
	closed bool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or key=value
// string; pgxpool's pool_max_conns and the like apply), brings the schema up
// to date and starts listening for heads. The objects live in the first
// schema of search_path (pass search_path=NAME in the URL to use another
// than public).
func Open(ctx context.Context, url string, opt Options) (*Store, error) {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: %w", err))
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: %w", err))
	}
	s := &Store{pool: pool, log: opt.Logger, quiet: aheadQuiet, copyMin: defaultCopyMin}
	s.tokenReads.pool = pool
	var schema *string
	var syncCommit string
	if err := pool.QueryRow(ctx, "SELECT current_schema(), current_setting('synchronous_commit')").Scan(&schema, &syncCommit); err != nil {
		pool.Close()
		return nil, classify(fmt.Errorf("postgres: connect: %w", err))
	}
	if schema == nil {
		pool.Close()
		return nil, errors.New("postgres: no schema of search_path exists; create it first")
	}
	s.schema = *schema
	// One log per schema: its lock and channel are named after it.
	h := fnv.New64a()
	h.Write([]byte("audit-stream/" + s.schema))
	s.lockKey = int64(h.Sum64())
	s.channel = "audit_stream_head." + s.schema
	if syncCommit == "off" {
		s.log.Warn("synchronous_commit is off: a 201 is sent before the commit is flushed, so a database crash can lose acknowledged events")
	}
	if err := migrate(ctx, pool, s.lockKey+1); err != nil {
		pool.Close()
		return nil, err
	}
	if err := fillTimes(ctx, pool, s.log); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.loadPayloadIndexes(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.readStats(ctx); err != nil {
		pool.Close()
		return nil, classify(fmt.Errorf("postgres: read the events table's statistics: %w", err))
	}
	s.stats.ctx, s.stats.stop = context.WithCancel(context.Background())
	if opt.ReadURL != "" {
		if s.rep, err = openReplica(ctx, opt.ReadURL, opt.ReadWait, s.schema); err != nil {
			pool.Close()
			return nil, err
		}
		if err := s.rep.sameLog(ctx, pool); err != nil {
			s.rep.pool.Close()
			pool.Close()
			return nil, err
		}
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.stopListen, s.listenDone = cancel, make(chan struct{})
	ready := make(chan error, 1)
	go s.listen(lctx, ready)
	if err := <-ready; err != nil {
		cancel()
		<-s.listenDone
		if s.rep != nil {
			s.rep.pool.Close()
		}
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close stops listening and closes the pool.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stopListen()
	<-s.listenDone
	s.stats.stop()
	s.stats.wg.Wait()
	s.heads.Close()
	if s.rep != nil {
		s.rep.pool.Close()
	}
	s.pool.Close()
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// listen holds one connection LISTENing on the schema's channel and
// publishes every head announced on it. After connecting (and after every
// reconnection, with backoff) it publishes the head as it reads it, since
// notifications sent while it was away are lost.
func (s *Store) listen(ctx context.Context, ready chan<- error) {
	defer close(s.listenDone)
	backoff := 50 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, func() {
			if first {
				first = false
				ready <- nil
			}
			backoff = 50 * time.Millisecond
		})
		if ctx.Err() != nil {
			break
		}
		if first {
			ready <- classify(fmt.Errorf("postgres: listen: %w", err))
			return
		}
		s.log.Warn("head notifications lost; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff = min(2*backoff, 5*time.Second)
	}
	if first {
		ready <- ctx.Err()
	}
}

func (s *Store) listenOnce(ctx context.Context, connected func()) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	h, err := readHead(ctx, conn)
	if err != nil {
		return err
	}
	// Heads announced while away are unknown: assume nothing.
	s.ahead.Store(nil)
	s.heads.Publish(h)
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		h, err := parseHead(n.Payload)
		if err != nil {
			s.log.Error("bad head notification", "payload", n.Payload, "err", err)
			continue
		}
		if s.isForeign(h) {
			s.foreign.Store(time.Now().UnixNano())
			s.ahead.Store(nil)
		}
		s.heads.Publish(h)
	}
}

// isForeign reports whether another instance committed head h: it is
// beyond this instance's last append and not the one in flight (whose
// notification can arrive before its COMMIT's answer).
func (s *Store) isForeign(h store.Head) bool {
	if own := s.own.Load(); own != nil && h.ID <= own.ID {
		return false
	}
	sp := s.sending.Load()
	return sp == nil || *sp != h
}

// aheadQuiet is how long, by default, after another instance last announced a head an
// instance goes on reading the head under the lock: while several append,
// a head assumed ahead has mostly moved by the time the lock is granted,
// and a group refused for it waits for the lock twice.
const aheadQuiet = time.Second

// mayAssume returns the head the next append may assume, or nil.
func (s *Store) mayAssume() *store.Head {
	if time.Since(time.Unix(0, s.foreign.Load())) < s.quiet {
		return nil
	}
	return s.ahead.Load()
}

// formatHead and parseHead are the NOTIFY payload: "id hex(hash)".
func formatHead(h store.Head) string { return fmt.Sprintf("%d %s", h.ID, h.Hash) }

func parseHead(p string) (store.Head, error) {
	var h store.Head
	id, hash, ok := strings.Cut(p, " ")
	if !ok {
		return h, errors.New("no space")
	}
	if _, err := fmt.Sscan(id, &h.ID); err != nil {
		return h, err
	}
	eh, err := event.ParseHash(hash)
	if err != nil {
		return h, err
	}
	h.Hash = eh
	return h, nil
}

// WatchHead implements store.Store.
func (s *Store) WatchHead(ctx context.Context) <-chan store.Head { return s.heads.Watch(ctx) }

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const headQuery = "SELECT event_id, hash FROM events ORDER BY event_id DESC LIMIT 1"

func readHead(ctx context.Context, q queryRower) (store.Head, error) {
	var h store.Head
	var hash []byte
	err := q.QueryRow(ctx, headQuery).Scan(&h.ID, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Head{}, nil
	}
	if err != nil {
		return h, classify(fmt.Errorf("postgres: read head: %w", err))
	}
	if err := setHash(&h.Hash, hash); err != nil {
		return h, classify(fmt.Errorf("postgres: head event %d: %w", h.ID, err))
	}
	return h, nil
}

var errHashSize = errors.New("stored hash is not 32 bytes")

func setHash(dst *event.Hash, b []byte) error {
	if len(b) != len(dst) {
		return errHashSize
	}
	copy(dst[:], b)
	return nil
}

// Head implements store.Store.
func (s *Store) Head(ctx context.Context) (store.Head, error) {
	if s.isClosed() {
		return store.Head{}, store.ErrClosed
	}
	return readHead(ctx, s.pool)
}

// conn is what a write transaction runs its statements on.
type conn interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

type txView struct {
	ctx context.Context
	// tx is nil in a build ahead of the lock (appendAhead), which reads
	// nothing.
	tx   conn
	head store.Head
	// edge is the right edge of the tree at head (the compact range, by
	// stored-hash index), and chain the provenance chain's value there,
	// read with the head: what a sequencer whose head another instance
	// moved needs first, without a round trip more while the lock is held.
	edge  map[int64]tlog.Hash
	chain event.Hash
	// prov is the provenance the build recorded, written with the events.
	prov []provenance.Record
}

func (v *txView) Head() store.Head { return v.head }

func (v *txView) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := v.edge[x]
		if !ok {
			if v.tx == nil {
				return nil, errAhead
			}
			return readHashes(v.ctx, v.tx, indexes)
		}
		out[i] = h
	}
	return out, nil
}

// edgeQuery reads the right edge of the tree at the head: for each set bit
// l of the head's id n, the level-l hash stored by event (n >> l) << l
// (store.RecordOfHash of the edge's stored-hash indexes).
const edgeQuery = `SELECT l, substring(e.tree FROM l * 32 + 1 FOR 32)
	FROM (SELECT max(event_id) AS n FROM events) h, generate_series(0, 62) AS l, events e
	WHERE (h.n >> l) & 1 = 1 AND e.event_id = (h.n >> l) << l`

// readEdge reads the rows of edgeQuery into a map by stored-hash index.
func readEdge(rows pgx.Rows, head int64) (map[int64]tlog.Hash, error) {
	defer rows.Close()
	edge := make(map[int64]tlog.Hash, 64)
	for rows.Next() {
		var level int
		var b []byte
		if err := rows.Scan(&level, &b); err != nil {
			return nil, err
		}
		var h tlog.Hash
		if len(b) != len(h) {
			return nil, fmt.Errorf("tree hash of level %d at head %d: %w", level, head, errHashSize)
		}
		copy(h[:], b)
		edge[tlog.StoredHashIndex(level, head>>level-1)] = h
	}
	return edge, rows.Err()
}

var eventColumnNames = []string{"event_id", "timestamp", "kind", "source", "payload", "prev_hash", "hash", "tree", "ts"}

// Append implements store.Store. The transaction is driven by hand on one
// pooled connection. While this instance is the only one appending, the
// head is where its last append left it, and the whole transaction is one
// pipeline (appendAhead): the lock is held for the inserts and the commit,
// never for a round trip to this process. Otherwise it costs two round
// trips besides what build asks for (idempotency keys, signature look-ups):
// BEGIN, the lock, the head, the tree's right edge and the provenance chain
// in one pipeline; the events, their provenance, the notification and
// COMMIT in another. So the lock is held for one round trip, the build and
// the commit, whichever instance moved the head last. A group of at least
// copyMin events is written by COPY before that second pipeline, for two
// round trips more under the lock (see defaultCopyMin): measured with 2
// and 3 instances appending batches of 1,000, the time pgx spends encoding
// the INSERT's arrays cost more than them.
func (s *Store) Append(ctx context.Context, build store.BuildFunc) ([]store.Record, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: connect: %w", err))
	}
	defer c.Release()
	if base := s.mayAssume(); base != nil {
		recs, done, err := s.appendAhead(ctx, c, *base, build)
		if done {
			return recs, err
		}
		// The head was not base: build again on the one read under the lock.
		s.ahead.CompareAndSwap(base, nil)
	}
	open := true
	defer func() {
		if open {
			rollback(c)
		}
	}()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// The lock is held until the transaction ends, by commit, rollback
	// or the death of the session (a killed instance holds nothing).
	b.Queue("SELECT pg_advisory_xact_lock($1)", s.lockKey)
	b.Queue(headQuery)
	b.Queue(edgeQuery)
	b.Queue(chainQuery)
	br := c.SendBatch(ctx, b)
	_, err = br.Exec()
	if err == nil {
		_, err = br.Exec()
	}
	var head store.Head
	if err == nil {
		head, err = readHead(ctx, batchRow{br})
	}
	var edge map[int64]tlog.Hash
	if err == nil {
		var rows pgx.Rows
		rows, err = br.Query()
		if err == nil {
			edge, err = readEdge(rows, head.ID)
		}
	}
	var chain event.Hash
	if err == nil {
		chain, err = readChain(br.QueryRow())
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: begin: %w", err))
	}
	v := &txView{ctx: ctx, tx: c, head: head, edge: edge, chain: chain}
	recs, err := build(v)
	if err != nil {
		return nil, err
	}
	if err := store.CheckExtends(head, recs); err != nil {
		return nil, err
	}
	after := head
	if len(recs) > 0 {
		after = store.Head{ID: recs[len(recs)-1].ID, Hash: recs[len(recs)-1].Hash}
	}
	s.sending.Store(&after)
	copied := len(recs) >= s.copyMin
	if copied {
		if err := copyEvents(ctx, c, encodeEvents(recs), len(recs)); err != nil {
			return nil, err
		}
	}
	b = &pgx.Batch{}
	queueProvenance(b, v.prov, nil)
	if len(recs) > 0 {
		if !copied {
			queueEvents(b, recs, nil)
		}
		b.Queue("SELECT pg_notify($1, $2)", s.channel, formatHead(after))
	}
	b.Queue("COMMIT")
	if err := c.SendBatch(ctx, b).Close(); err != nil {
		return nil, classify(fmt.Errorf("postgres: commit: %w", err))
	}
	open = false
	s.grew(after.ID)
	// Assume the head next time only if nobody else wrote since this
	// instance's last append.
	if own := s.own.Swap(&after); own != nil && *own == head {
		s.ahead.Store(&after)
	} else {
		s.ahead.Store(nil)
	}
	return recs, nil
}

// errAhead is what a transaction built ahead of the lock returns for a
// read it cannot serve without one: the build is run again under the lock.
var errAhead = errors.New("postgres: read in a build ahead of the lock")

// appendAhead runs the whole transaction in one pipeline on the assumption
// that the head is still base, the head this instance's last append left:
// build runs before anything is sent, on a view that serves no read (a
// build that needs one, for an idempotency key or a signature, goes the
// long way). The pipeline has no BEGIN: its statements up to the Sync are
// one implicit transaction, committed at the Sync (the answer to it comes
// after the commit, as COMMIT's would) and rolled back by it if any
// statement fails, so a failure leaves no transaction open holding the
// lock for a round trip more. The events' INSERT is what checks the
// assumption, under the lock: if another writer moved the head, event
// base+1 exists and the primary key refuses it; if the head is behind base
// (a database restored or failed over to an older state), event base is
// not there with its hash and nothing is inserted, and the provenance
// records and the notification, conditioned on the last event inserted,
// neither. done is false when the assumption did not hold (nothing was
// written, build must run again) or the build needed a read. A group of
// at least copyMin events goes by appendAheadCopy instead.
func (s *Store) appendAhead(ctx context.Context, c *pgxpool.Conn, base store.Head, build store.BuildFunc) (_ []store.Record, done bool, _ error) {
	v := &txView{ctx: ctx, head: base}
	recs, err := build(v)
	if err != nil || len(recs) == 0 || store.CheckExtends(base, recs) != nil {
		return nil, false, nil
	}
	last := recs[len(recs)-1]
	guard := &headGuard{base: base, last: store.Head{ID: last.ID, Hash: last.Hash}}
	s.sending.Store(&guard.last)
	if len(recs) >= s.copyMin {
		return s.appendAheadCopy(ctx, c, base, guard.last, recs, v.prov)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_xact_lock($1)", s.lockKey)
	queueEvents(b, recs, guard)
	queueProvenance(b, v.prov, guard)
	b.Queue("SELECT pg_notify($1, $2) FROM events WHERE event_id = $3 AND hash = $4", s.channel, formatHead(guard.last), guard.last.ID, guard.last.Hash[:])
	br := c.SendBatch(ctx, b)
	var inserted int64
	_, err = br.Exec()
	if err == nil {
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		inserted = tag.RowsAffected()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	var pe *pgconn.PgError
	switch {
	case err == nil && inserted == int64(len(recs)):
		s.leftAhead(&guard.last)
		return recs, true, nil
	case err == nil:
		// The head was behind base: nothing was inserted.
		s.foreign.Store(time.Now().UnixNano())
		return nil, false, nil
	case errors.As(err, &pe) && pe.Code == "23505" && pe.TableName == "events":
		// The head moved past base: the transaction was rolled back.
		// Another instance appends, though its head may not have been
		// announced yet: assume nothing for a while.
		s.foreign.Store(time.Now().UnixNano())
		return nil, false, nil
	default:
		return nil, true, classify(fmt.Errorf("postgres: commit: %w", err))
	}
}

// leftAhead records that an append built ahead committed, leaving last:
// this instance's head, and the one its next append may assume.
func (s *Store) leftAhead(last *store.Head) {
	s.own.Store(last)
	s.ahead.Store(last)
	s.grew(last.ID)
}

// headGuard conditions a pipelined append's statements on the head it
// assumed (see appendAhead): the events are inserted only on top of base,
// the rest only if the last of them was.
type headGuard struct{ base, last store.Head }

// batchRow reads the next result of a batch as a row.
type batchRow struct{ br pgx.BatchResults }

func (r batchRow) QueryRow(context.Context, string, ...any) pgx.Row { return r.br.QueryRow() }

// queueEvents queues one INSERT of recs on b, its columns as arrays: one
// statement (and one prepared plan) whatever the group's size, in the
// pipeline that commits it, so a large group costs no round trip more.
// With g, only on top of g.base.
func queueEvents(b *pgx.Batch, recs []store.Record, g *headGuard) {
	n := len(recs)
	var (
		ids                  = make([]int64, n)
		stamps, payloads     = make([]string, n), make([]string, n)
		kinds, sources       = make([][]byte, n), make([][]byte, n)
		prevs, hashes, trees = make([][]byte, n), make([][]byte, n), make([][]byte, n)
		ts                   = make([]*int64, n) // NULL: a timestamp that does not parse is in no time range
		treeBytes            = 0
	)
	for i := range recs {
		treeBytes += 32 * len(recs[i].Tree)
	}
	// One allocation for every hash of the group.
	block := make([]byte, 0, 64*n+treeBytes)
	for i := range recs {
		r := &recs[i]
		ids[i], stamps[i], payloads[i] = r.ID, r.Timestamp, string(r.Payload)
		kinds[i], sources[i] = []byte(r.Kind), []byte(r.Source)
		at := len(block)
		block = append(block, r.PrevHash[:]...)
		prevs[i] = block[at:len(block):len(block)]
		at = len(block)
		block = append(block, r.Hash[:]...)
		hashes[i] = block[at:len(block):len(block)]
		at = len(block)
		for _, h := range r.Tree {
			block = append(block, h[:]...)
		}
		trees[i] = block[at:len(block):len(block)]
		if t, ok := store.TimeOf(r.Timestamp); ok {
			ts[i] = &t
		}
	}
	insert := "INSERT INTO events (" + strings.Join(eventColumnNames, ", ") + ") SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::bytea[], $7::bytea[], $8::bytea[], $9::bigint[])"
	if g == nil {
		b.Queue(insert, ids, stamps, kinds, sources, payloads, prevs, hashes, trees, ts)
		return
	}
	b.Queue(insert+" WHERE EXISTS (SELECT FROM events WHERE event_id = $10 AND hash = $11)",
		ids, stamps, kinds, sources, payloads, prevs, hashes, trees, ts, g.base.ID, g.base.Hash[:])
}

// Meta implements store.Store.
func (s *Store) Meta(ctx context.Context, key string) ([]byte, error) {
	if s.isClosed() {
		return nil, store.ErrClosed
	}
	var v []byte
	err := s.pool.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: meta %q: %w", key, err))
	}
	return v, nil
}

// SetMeta implements store.Store.
func (s *Store) SetMeta(ctx context.Context, key string, value []byte) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", key, value)
	if err != nil {
		return classify(fmt.Errorf("postgres: set meta %q: %w", key, err))
	}
	return nil
}

// SwapMeta implements store.Store: one statement, atomic against every
// other instance.
func (s *Store) SwapMeta(ctx context.Context, key string, old, value []byte) error {
	if s.isClosed() {
		return store.ErrClosed
	}
	var tag pgconn.CommandTag
	var err error
	if old == nil {
		tag, err = s.pool.Exec(ctx, "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, value)
	} else {
		tag, err = s.pool.Exec(ctx, "UPDATE meta SET value = $3 WHERE key = $1 AND value = $2", key, old, value)
	}
	if err != nil {
		return classify(fmt.Errorf("postgres: swap meta %q: %w", key, err))
	}
	if tag.RowsAffected() == 0 {
		return store.ErrConflict
	}
	return nil
}
