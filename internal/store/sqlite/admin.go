package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
)

var errAdmin = errors.New("sqlite: store opened for administration cannot append events")

// OpenAdmin opens the store in dir for token administration while a server
// may be running on it: it does not take the data directory's lock, and its
// Append always fails, so the server's sequencer stays the only writer of
// the log. SQLite's own locking (WAL, busy timeout) serializes its writes to
// the tokens table with the server's transactions. It creates the directory
// and the database when needed, so the first admin token can be made before
// the first start.
func OpenAdmin(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create data directory: %w", err)
	}
	return open(ctx, dir)
}
