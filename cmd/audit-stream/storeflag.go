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
}

func (c *storeConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.store, "store", envOr("AUDIT_STREAM_STORE", ""), "the store: a data directory, sqlite:DIR, or a postgres:// URL shared by several instances (env AUDIT_STREAM_STORE; default --data)")
	fs.StringVar(&c.data, "data", envOr("AUDIT_STREAM_DATA", "./audit-stream-data"), "data directory of the SQLite store, when --store is not given (env AUDIT_STREAM_DATA)")
}

// spec is --store if given, else --data.
func (c *storeConfig) spec() (backend.Spec, error) {
	if c.store != "" {
		return backend.Parse(c.store)
	}
	return backend.Parse(c.data)
}

func (c *storeConfig) open(ctx context.Context, mode backend.Mode, log *slog.Logger) (store.Store, backend.Spec, error) {
	spec, err := c.spec()
	if err != nil {
		return nil, spec, err
	}
	st, err := backend.Open(ctx, spec, mode, log)
	return st, spec, err
}
