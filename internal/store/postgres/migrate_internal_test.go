package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/jackc/pgx/v5"
)

// A database written before the time column existed (schema version 1)
// opens in place: its events get their instants, and time ranges find them.
func TestMigrateTimeColumn(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Schema(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, versionTable+migrations[0]+"; INSERT INTO audit_stream_schema (version) VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	stamps := []string{"2026-03-01T10:00:00Z", "2026-03-02 10:00:00", "not a time", "2026-03-03T12:00:00+02:00"}
	for i, ts := range stamps {
		if _, err := conn.Exec(ctx, "INSERT INTO events (event_id, timestamp, kind, source, payload, prev_hash, hash, tree) VALUES ($1, $2, 'other', 's', '{}', $3, $3, $3)", i+1, ts, make([]byte, 32)); err != nil {
			t.Fatal(err)
		}
	}
	st := openTest(t, url)
	for i, ts := range stamps {
		var got *int64
		if err := conn.QueryRow(ctx, "SELECT ts FROM events WHERE event_id = $1", i+1).Scan(&got); err != nil {
			t.Fatal(err)
		}
		want, ok := store.TimeOf(ts)
		if ok != (got != nil) || ok && *got != want {
			t.Errorf("event %d (%q): ts %v, want %d (%v)", i+1, ts, got, want, ok)
		}
	}
	var ids []int64
	f := store.Filter{TimeFrom: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	if err := st.Scan(ctx, f, 0, func(e *event.Event) error { ids = append(ids, e.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids[0] != 2 || ids[1] != 4 {
		t.Fatalf("since 2026-03-02: %v", ids)
	}
	// Migration 5's statistics exist and are filled: the planner knows
	// the kind and source pairs of the rows already there.
	var pairs int
	if err := conn.QueryRow(ctx, "SELECT coalesce(array_length(most_common_vals, 1), 0) FROM pg_stats_ext WHERE statistics_name = 'events_kind_source' AND statistics_schemaname = current_schema()").Scan(&pairs); err != nil {
		t.Fatalf("kind and source statistics: %v", err)
	}
	if pairs != 1 {
		t.Fatalf("kind and source statistics: %d most common combinations, want 1 (other, s and their digests)", pairs)
	}
}
