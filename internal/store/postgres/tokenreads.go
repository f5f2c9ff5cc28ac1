package postgres

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// tokenReads coalesces the token lookups every request makes (one per
// request: a change through any instance must count from the next one) the
// way the ledger coalesces appends: each call joins the next batch, and a
// batch's query is sent only after every call in it arrived, so it sees
// every change committed before any of them, exactly as a query of its own
// would. One statement then answers all the requests that arrived during
// the previous one, instead of a round trip and a backend's work each.
type tokenReads struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	next    *tokenBatch // gathering; sent when the running one returns
	running bool
}

type tokenBatch struct {
	digests map[[sha256.Size]byte]bool
	has     bool // some call asks whether any token exists

	done      chan struct{}
	found     map[[sha256.Size]byte]store.Token
	hasTokens bool
	err       error
}

// batchTimeout bounds one batch's query, which no single caller's context
// may cancel for the others.
const batchTimeout = 30 * time.Second

// lookup waits for the batch that reads digest (or, with has, whether any
// token exists) and returns it.
func (r *tokenReads) lookup(ctx context.Context, digest *[sha256.Size]byte, has bool) (*tokenBatch, error) {
	r.mu.Lock()
	b := r.next
	if b == nil {
		b = &tokenBatch{digests: map[[sha256.Size]byte]bool{}, done: make(chan struct{})}
		r.next = b
	}
	if digest != nil {
		b.digests[*digest] = true
	}
	b.has = b.has || has
	if !r.running {
		r.running = true
		go r.run()
	}
	r.mu.Unlock()
	select {
	case <-b.done:
		return b, b.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run sends batches one at a time until none is waiting.
func (r *tokenReads) run() {
	for {
		r.mu.Lock()
		b := r.next
		r.next = nil
		if b == nil {
			r.running = false
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		b.err = r.read(b)
		close(b.done)
	}
}

func (r *tokenReads) read(b *tokenBatch) error {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	q := &pgx.Batch{}
	if len(b.digests) > 0 {
		ds := make([][]byte, 0, len(b.digests))
		for d := range b.digests {
			ds = append(ds, d[:])
		}
		q.Queue("SELECT "+store.TokenColumns+" FROM tokens WHERE digest = ANY($1)", ds)
	}
	if b.has {
		q.Queue("SELECT EXISTS (SELECT 1 FROM tokens)")
	}
	br := r.pool.SendBatch(ctx, q)
	defer br.Close()
	if len(b.digests) > 0 {
		rows, err := br.Query()
		if err != nil {
			return classify(fmt.Errorf("postgres: token lookup: %w", err))
		}
		b.found = make(map[[sha256.Size]byte]store.Token)
		for rows.Next() {
			t, err := scanToken(rows)
			if err != nil {
				rows.Close()
				return classify(fmt.Errorf("postgres: token lookup: %w", err))
			}
			b.found[t.Digest] = t
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return classify(fmt.Errorf("postgres: token lookup: %w", err))
		}
	}
	if b.has {
		if err := br.QueryRow().Scan(&b.hasTokens); err != nil {
			return classify(fmt.Errorf("postgres: has tokens: %w", err))
		}
	}
	return classify(br.Close())
}
