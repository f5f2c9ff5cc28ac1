// Package backend opens the store an operator names: a data directory (or
// sqlite:PATH) for the embedded SQLite store, or a postgres:// URL for a
// database shared by several instances. Every command and test harness
// opens its store here.
package backend

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/postgres"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// Spec is a parsed store name.
type Spec struct {
	Dir string // the SQLite data directory, or ""
	URL string // the PostgreSQL URL, or ""
	// ReadURL is a read replica of the PostgreSQL database, or "": see
	// WithReplica and Reads.
	ReadURL string
}

// WithReplica names a read replica of the PostgreSQL database for the
// read endpoints (see Reads); "" names none.
func (s Spec) WithReplica(url string) (Spec, error) {
	if url == "" {
		return s, nil
	}
	if s.URL == "" {
		return s, errors.New("store: a read replica (--store-read) needs a PostgreSQL store")
	}
	r, err := Parse(url)
	if err != nil || r.URL == "" {
		return s, errors.New("store: the read replica must be a postgres:// URL")
	}
	s.ReadURL = r.URL
	return s, nil
}

// Parse reads a store name: a postgres:// or postgresql:// URL, sqlite:PATH,
// or a plain directory path.
func Parse(s string) (Spec, error) {
	switch {
	case s == "":
		return Spec{}, errors.New("store: empty store name (a directory, sqlite:PATH or a postgres:// URL)")
	case strings.HasPrefix(s, "postgres://"), strings.HasPrefix(s, "postgresql://"):
		if _, err := url.Parse(s); err != nil {
			return Spec{}, errors.New("store: bad PostgreSQL URL (the error would show the password)")
		}
		return Spec{URL: s}, nil
	case strings.HasPrefix(s, "sqlite:"):
		dir := strings.TrimPrefix(s, "sqlite:")
		if dir == "" {
			return Spec{}, errors.New("store: sqlite: needs a directory")
		}
		return Spec{Dir: dir}, nil
	}
	return Spec{Dir: s}, nil
}

// Shared reports whether several instances may serve the store at once.
func (s Spec) Shared() bool { return s.URL != "" }

// String names the store for logs, without a password.
func (s Spec) String() string {
	if s.Dir != "" {
		return s.Dir
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return "postgres"
	}
	return u.Redacted()
}

// Mode says what the opener will do with the store.
type Mode int

const (
	// Serve opens the store for a server, the only sequencer of a data
	// directory; a PostgreSQL store has as many as there are instances.
	Serve Mode = iota
	// Admin opens it beside a running server, for tokens and meta: a
	// SQLite store so opened refuses appends.
	Admin
)

// Open opens the store named by spec.
func Open(ctx context.Context, spec Spec, mode Mode, log *slog.Logger) (store.Store, error) {
	if spec.URL != "" {
		return postgres.Open(ctx, spec.URL, postgres.Options{Logger: log, ReadURL: spec.ReadURL})
	}
	if spec.Dir == "" {
		return nil, errors.New("store: no store named")
	}
	if mode == Admin {
		return sqlite.OpenAdmin(ctx, spec.Dir)
	}
	return sqlite.Open(ctx, spec.Dir)
}

// Reads is the store the read endpoints (queries, proofs, export, tiles,
// verification) use: the read replica for a PostgreSQL store opened with
// one, st itself otherwise. The head, appends, tokens, idempotency keys and
// meta always come from st.
func Reads(st store.Store) store.Store {
	if r, ok := st.(interface{ Reads() store.Store }); ok {
		return r.Reads()
	}
	return st
}
