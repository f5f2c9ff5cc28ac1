package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"
)

// replica is a read replica of the database (a streaming standby, or any
// copy that replays the primary's WAL). Events reach it in commit order, so
// it always holds a prefix of the log: what it holds is right, and only the
// newest events may be missing.
type replica struct {
	pool *pgxpool.Pool
	wait time.Duration
	// head is the highest event id the replica was seen to hold; it only
	// grows.
	head atomic.Int64
}

// DefaultReadWait is how long a read waits for the replica to catch up
// with the events it needs before it fails as unavailable.
const DefaultReadWait = 2 * time.Second

func openReplica(ctx context.Context, url string, wait time.Duration, schema string) (*replica, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: read replica: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify(fmt.Errorf("postgres: read replica: %w", err))
	}
	var got *string
	if err := pool.QueryRow(ctx, "SELECT current_schema()").Scan(&got); err != nil {
		pool.Close()
		return nil, classify(fmt.Errorf("postgres: read replica: connect: %w", err))
	}
	if got == nil || *got != schema {
		pool.Close()
		return nil, fmt.Errorf("postgres: the read replica's schema is %v, the primary's %q: give both URLs the same search_path", got, schema)
	}
	if wait <= 0 {
		wait = DefaultReadWait
	}
	return &replica{pool: pool, wait: wait}, nil
}

// sameLog refuses a replica of another log: its first event must be the
// primary's (a replica that holds none yet is taken on trust). A replica
// that has not yet replayed the schema the primary just created gets the
// replica's wait to do so.
func (r *replica) sameLog(ctx context.Context, primary *pgxpool.Pool) error {
	const first = "SELECT hash FROM events WHERE event_id = 1"
	var mine, theirs []byte
	if err := primary.QueryRow(ctx, first).Scan(&mine); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return classify(fmt.Errorf("postgres: %w", err))
	}
	deadline := time.Now().Add(r.wait)
	for {
		err := r.pool.QueryRow(ctx, first).Scan(&theirs)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42P01" && time.Now().Before(deadline) { // undefined_table
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return classify(fmt.Errorf("postgres: read replica: %w", err))
		}
		break
	}
	if mine != nil && theirs != nil && !bytes.Equal(mine, theirs) {
		return errors.New("postgres: the read replica holds another log (its first event differs from the primary's)")
	}
	return nil
}

// await returns once the replica holds event need, or fails as unavailable
// after the replica's wait.
func (r *replica) await(ctx context.Context, need int64) error {
	if need <= r.head.Load() {
		return nil
	}
	deadline := time.Now().Add(r.wait)
	delay := time.Millisecond
	for {
		var h int64
		if err := r.pool.QueryRow(ctx, "SELECT coalesce(max(event_id), 0) FROM events").Scan(&h); err != nil {
			return classify(fmt.Errorf("postgres: read replica: %w", err))
		}
		for old := r.head.Load(); h > old && !r.head.CompareAndSwap(old, h); old = r.head.Load() {
		}
		if h >= need {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%w: the read replica holds events up to %d and this read needs %d: it is more than %v behind the primary", store.ErrUnavailable, h, need, r.wait)
		}
		select {
		case <-time.After(min(delay, left)):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// Reads serves the log's reads (events, queries, tree hashes) from the read
// replica, and everything else (the head, appends, tokens, idempotency
// keys, meta) from the primary through the embedded Store.
type Reads struct {
	*Store
	rep *replica
}

// Reads returns the store the read endpoints use: s itself without a read
// replica (Options.ReadURL).
func (s *Store) Reads() store.Store {
	if s.rep == nil {
		return s
	}
	return &Reads{Store: s, rep: s.rep}
}

// within returns the replica once it holds every event up to the smaller
// of until and the primary's head (events beyond the head do not exist
// yet, and a read of them must not wait for them).
func (r *Reads) within(ctx context.Context, until int64) error {
	if until <= r.rep.head.Load() {
		return nil
	}
	h, err := r.Store.Head(ctx)
	if err != nil {
		return err
	}
	return r.rep.await(ctx, min(until, h.ID))
}

// Get implements store.Store.
func (r *Reads) Get(ctx context.Context, id int64) (event.Event, error) {
	if id > r.rep.head.Load() {
		h, err := r.Store.Head(ctx)
		if err != nil {
			return event.Event{}, err
		}
		if id > h.ID {
			return event.Event{}, store.ErrNotFound
		}
		if err := r.rep.await(ctx, id); err != nil {
			return event.Event{}, err
		}
	}
	return r.get(ctx, r.rep.pool, id)
}

// Latest implements store.Store.
func (r *Reads) Latest(ctx context.Context, f store.Filter, limit int) ([]event.Event, error) {
	return latest(ctx, r, f, limit)
}

// Scan implements store.Store. A scan bounded by Until sees every event up
// to it that the primary has; an unbounded one sees the log as far as the
// replica has it.
func (r *Reads) Scan(ctx context.Context, f store.Filter, limit int, fn func(*event.Event) error) error {
	if f.Until > 0 {
		if err := r.within(ctx, f.Until); err != nil {
			return err
		}
	}
	return r.scan(ctx, r.rep.pool, f, limit, fn)
}

// ReadHashes implements store.Store.
func (r *Reads) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if r.isClosed() {
		return nil, store.ErrClosed
	}
	var need int64
	for _, x := range indexes {
		id, _ := store.RecordOfHash(x)
		need = max(need, id)
	}
	if err := r.within(ctx, need); err != nil {
		return nil, err
	}
	return readHashes(ctx, r.rep.pool, indexes)
}
