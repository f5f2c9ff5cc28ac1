package main

import (
	"context"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// openStore opens the store the server and the offline tools work on.
func openStore(ctx context.Context, data string) (store.Store, error) {
	return sqlite.Open(ctx, data)
}
