package main

import (
	"context"
	"flag"
	"log/slog"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/backend"
)

// storeConfig is the --store flag every command that opens the store takes,
// with --data kept as its older name for a data directory.
type storeConfig struct {
	store, data string
	read        string // --store-read, for the commands that take it
}

// readFlag adds --store-read, for the commands that read the log.
func (c *storeConfig) readFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.read, "store-read", envOr("AUDIT_STREAM_STORE_READ", ""), "a read replica of the PostgreSQL store (a postgres:// URL) for queries, proofs, export, tiles and /verify; the head, appends, tokens and idempotency keys stay on --store (env AUDIT_STREAM_STORE_READ)")
}

func (c *storeConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.store, "store", envOr("AUDIT_STREAM_STORE", ""), "the store: a data directory, sqlite:DIR, or a postgres:// URL shared by several instances (env AUDIT_STREAM_STORE; default --data)")
	fs.StringVar(&c.data, "data", envOr("AUDIT_STREAM_DATA", "./audit-stream-data"), "data directory of the SQLite store, when --store is not given (env AUDIT_STREAM_DATA)")
}

// spec is --store if given, else --data.
func (c *storeConfig) spec() (backend.Spec, error) {
	name := c.data
	if c.store != "" {
		name = c.store
	}
	spec, err := backend.Parse(name)
	if err != nil {
		return spec, err
	}
	return spec.WithReplica(c.read)
}

func (c *storeConfig) open(ctx context.Context, mode backend.Mode, log *slog.Logger) (store.Store, backend.Spec, error) {
	spec, err := c.spec()
	if err != nil {
		return nil, spec, err
	}
	st, err := backend.Open(ctx, spec, mode, log)
	return st, spec, err
}
