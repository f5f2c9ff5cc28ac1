package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// TestRawReader checks that scans by id read rows through rawReader (a
// driver upgrade that hides the connection's handle would silently send
// them back through the driver's slower rows) and that it reads every row
// exactly as the driver's rows do: texts with any characters, kinds and
// sources that repeat or not, empty values, values stored as blobs, the
// damaged row Get must report.
func TestRawReader(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3*scanPage + 7
	recs := make([]store.Record, n)
	var prev event.Hash
	for i := range recs {
		r := &recs[i]
		r.ID = int64(i + 1)
		r.Timestamp = fmt.Sprintf("2026-05-15T03:14:%02d.%06d+00:00", i%60, i)
		r.Kind = []string{"a", "request_denied", "é\u2028ü"}[i%3]
		r.Source = fmt.Sprintf("src-%d", i%(maxNames+500)) // more than the reader shares
		r.Payload = []byte(fmt.Sprintf(`{"i":%d,"s":"\u00e9\\n%s"}`, i, make([]byte, i%300)))
		if i == 5 {
			r.Payload = []byte(`{}`)
		}
		r.PrevHash = prev
		r.Hash = event.Hash{byte(i), byte(i >> 8), 7}
		r.Tree = []tlog.Hash{{}} // not read by a scan
		prev = r.Hash
	}
	if _, err := st.Append(ctx, func(store.Tx) ([]store.Record, error) { return recs, nil }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"UPDATE events SET kind = CAST(kind AS BLOB), payload = CAST(payload AS BLOB) WHERE event_id = 9",
		"UPDATE events SET timestamp = '', source = '' WHERE event_id = 10",
		"UPDATE events SET hash = substr(hash, 1, 31) WHERE event_id = 11",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if st, err = Open(ctx, dir); err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	conn, err := st.r.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type row struct {
		e  event.Event
		ok bool
	}
	read := func(raw bool) (rows []row) {
		err := conn.Raw(func(dc any) error {
			rc := dc.(*rowsConn)
			if rc.raw == nil {
				t.Fatal("no rawReader on the driver's connection: has the driver's conn type changed?")
			}
			keep := func(e *event.Event, ok bool) error {
				rows = append(rows, row{*e, ok})
				return nil
			}
			if raw {
				return rc.raw.query(ctx, "SELECT "+rawColumns+" FROM events WHERE event_id > ? ORDER BY event_id", []int64{0}, keep)
			}
			return driverRows(ctx, dc, "SELECT "+scanColumns+" FROM events WHERE event_id > ? ORDER BY event_id", []any{int64(0)}, keep)
		})
		if err != nil {
			t.Fatal(err)
		}
		return rows
	}
	viaDriver, viaRaw := read(false), read(true)
	if len(viaRaw) != n || len(viaDriver) != n {
		t.Fatalf("%d rows through rawReader, %d through the driver, want %d", len(viaRaw), len(viaDriver), n)
	}
	for i := range viaRaw {
		want, got := viaDriver[i], viaRaw[i]
		switch i + 1 {
		case 9: // a blob where the driver expects a text: its row is read again with Get
			if want.ok {
				t.Fatalf("row 9 through the driver: ok")
			}
			want.ok, want.e = true, recs[i].Event
		case 11:
			if got.ok {
				t.Fatalf("row with a 31-byte hash read as %+v", got.e)
			}
			continue
		}
		if got.ok != want.ok || !reflect.DeepEqual(got.e, want.e) {
			t.Fatalf("row %d:\n rawReader %v %+v\n driver    %v %+v", i+1, got.ok, got.e, want.ok, want.e)
		}
	}
	if got := viaRaw[9].e; got.Timestamp != "" || got.Source != "" {
		t.Fatalf("row 10 through rawReader: %+v", got)
	}

	// Scan over the damaged row delivers those before it and then fails
	// naming it, whichever way it reads.
	var last int64
	err = st.Scan(ctx, store.Filter{}, 0, func(e *event.Event) error {
		last = e.ID
		return nil
	})
	if err == nil || last != 10 {
		t.Fatalf("Scan: %v after event %d", err, last)
	}
}
