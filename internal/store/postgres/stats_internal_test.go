package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// The reads an append makes under the lock keep their plans per
// connection. Planned on a new log, whose table the migrations analyzed
// while empty, they read the whole table or a whole index; once the log
// passes analyzeAt events the store analyzes the table, which makes every
// session plan them again, as lookups. Without that ANALYZE the plans made
// here while the table was empty read every event.
func TestKeptPlansStayLookupsAsTheLogGrows(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Schema(t)
	st := openTest(t, url)
	if rows := st.stats.rows.Load(); rows != 0 {
		t.Fatalf("a new log's statistics say %d rows, want 0 (migration 5 analyzes the empty table): this test no longer sets up what it checks", rows)
	}
	session, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer session.Close(ctx)
	// A session of its own, with the statements prepared as pgx prepares
	// them on the store's connections: planned now, on the empty table.
	reads := map[string]string{"head": headQuery, "edge": edgeQuery, "chain": chainQuery}
	for name, q := range reads {
		if _, err := session.Exec(ctx, "PREPARE "+name+" AS "+q); err != nil {
			t.Fatal(err)
		}
		if _, err := session.Exec(ctx, "EXECUTE "+name); err != nil {
			t.Fatal(err)
		}
	}

	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	const events = 20 * analyzeAt
	for i := 0; i < events; i += 500 {
		reqs := make([]event.Request, 500)
		for j := range reqs {
			reqs[j] = event.Request{Kind: "k", Source: fmt.Sprintf("s%d", j%7), Payload: []byte(`{"n":1}`)}
		}
		if _, err := led.Append(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for st.stats.rows.Load() < analyzeAt {
		if time.Now().After(deadline) {
			t.Fatalf("statistics still say %d rows after %d events were appended", st.stats.rows.Load(), events)
		}
		time.Sleep(20 * time.Millisecond)
	}

	for name := range reads {
		var plan []struct{ Plan planNode }
		var js []byte
		if err := session.QueryRow(ctx, "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE "+name).Scan(&js); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(js, &plan); err != nil {
			t.Fatal(err)
		}
		// The edge is a row per set bit of the head's id, each found
		// by its key; a lookup reads a few rows and pages. A whole
		// table is hundreds of pages here, and a whole index walked
		// for each of the edge's ids (each row found, none filtered)
		// as many.
		p := plan[0].Plan
		if read, pages := p.rowsRead(), p.Hit+p.Read; read > 200 || pages > 100 {
			t.Errorf("%s: the kept plan reads %.0f rows and %.0f pages at %d events: %s", name, read, pages, events, js)
		}
	}
}

// planNode is a node of EXPLAIN's JSON plan.
type planNode struct {
	Rows    float64    `json:"Actual Rows"`
	Loops   float64    `json:"Actual Loops"`
	Removed float64    `json:"Rows Removed by Filter"`
	Hit     float64    `json:"Shared Hit Blocks"` // over the node and its children
	Read    float64    `json:"Shared Read Blocks"`
	Plans   []planNode `json:"Plans"`
}

// rowsRead is how many rows every node of the plan produced or filtered
// out, over all its loops.
func (n planNode) rowsRead() float64 {
	r := (n.Rows + n.Removed) * n.Loops
	for _, c := range n.Plans {
		r += c.rowsRead()
	}
	return r
}

// openTest opens the store on url for the test, closed at its end.
func openTest(t *testing.T, url string) *Store {
	t.Helper()
	st, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
