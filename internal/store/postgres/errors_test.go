package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name              string
		err               error
		unavailable, full bool
	}{
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, true, false},
		{"cannot connect now", &pgconn.PgError{Code: "57P03"}, true, false},
		{"connection failure", &pgconn.PgError{Code: "08006"}, true, false},
		{"read-only after failover", &pgconn.PgError{Code: "25006"}, true, false},
		{"disk full", &pgconn.PgError{Code: "53100"}, false, true},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false, false},
		{"connect error", &pgconn.ConnectError{}, true, false},
		{"conn closed", errors.New("conn closed"), true, false},
		{"cancelled", context.Canceled, false, false},
		{"connection cut mid-message", io.ErrUnexpectedEOF, true, false},
		{"other", errors.New("stored hash is not 32 bytes"), false, false},
	} {
		got := classify(fmt.Errorf("postgres: x: %w", tc.err))
		if errors.Is(got, store.ErrUnavailable) != tc.unavailable || store.IsFull(got) != tc.full {
			t.Errorf("%s: classified as %v", tc.name, got)
		}
		if !errors.Is(got, tc.err) {
			t.Errorf("%s: the cause was lost: %v", tc.name, got)
		}
	}
}
