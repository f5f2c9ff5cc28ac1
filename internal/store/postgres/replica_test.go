package postgres_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/postgres"
	"golang.org/x/mod/sumdb/tlog"
)

// A real streaming standby (pg_basebackup -R of a private primary) serves
// the reads. While its replay is paused the replica falls behind: reads
// of events it lacks fail as unavailable (never a not-found, never a wrong
// answer), reads of what it holds still work, and the head, tokens and
// appends come from the primary. Once replay resumes every read works, and
// the trees built from the replica are the primary's.
func TestReadReplica(t *testing.T) {
	ctx := context.Background()
	primary := pgtest.StartServer(t)
	replica := primary.StartReplica(t)
	_, key, err := checkpoint.GenerateKey("audit-stream/replica")
	if err != nil {
		t.Fatal(err)
	}
	env := apitest.Start(t, apitest.Options{Store: primary.URL, StoreRead: replica.URL, Key: key})
	post := func(n int) {
		t.Helper()
		for i := range n {
			resp, err := apitest.Client.Post(env.URL+"/events", "application/json",
				strings.NewReader(fmt.Sprintf(`{"kind":"other","source":"replica","payload":{"i":%d}}`, i)))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("append: status %d", resp.StatusCode)
			}
		}
	}
	post(50)
	st, err := postgres.Open(ctx, primary.URL, postgres.Options{ReadURL: replica.URL, ReadWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reads := st.Reads()
	if reads == store.Store(st) {
		t.Fatal("Reads without the replica")
	}
	root := func(s store.Store, n int64) (tlog.Hash, error) {
		return tlog.TreeHash(n, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return s.ReadHashes(ctx, idx) }))
	}
	count := func(f store.Filter) (int, error) {
		n := 0
		err := reads.Scan(ctx, f, 0, func(*event.Event) error { n++; return nil })
		return n, err
	}
	// Caught up: the replica answers.
	if e, err := reads.Get(ctx, 50); err != nil || e.ID != 50 {
		t.Fatalf("Get(50) from the replica: %+v, %v", e, err)
	}
	want50, err := root(st, 50)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := root(reads, 50); err != nil || got != want50 {
		t.Fatalf("tree of 50 from the replica: %v, %v", got, err)
	}

	replica.Exec(t, "SELECT pg_wal_replay_pause()")
	post(10) // events 51-60 reach the primary only
	if h, err := reads.Head(ctx); err != nil || h.ID != 60 {
		t.Fatalf("Head through the read view = %+v, %v; want the primary's 60", h, err)
	}
	for name, read := range map[string]func() error{
		"Get(55)":           func() error { _, err := reads.Get(ctx, 55); return err },
		"Scan(until 60)":    func() error { _, err := count(store.Filter{Until: 60}); return err },
		"tree of 60":        func() error { _, err := root(reads, 60); return err },
		"Latest(until 58)":  func() error { _, err := reads.Latest(ctx, store.Filter{Until: 58}, 5); return err },
		"Scan(until 1000)":  func() error { _, err := count(store.Filter{Until: 1000}); return err },
		"Get(60) via ready": func() error { _, err := reads.Get(ctx, 60); return err },
	} {
		if err := read(); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s with the replica behind: %v, want ErrUnavailable", name, err)
		}
	}
	// What the replica holds, and what does not exist anywhere, answer at once.
	if _, err := reads.Get(ctx, 61); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get(61), beyond the primary's head: %v, want ErrNotFound", err)
	}
	if n, err := count(store.Filter{}); err != nil || n != 50 {
		t.Errorf("unbounded scan on the replica behind: %d events, %v; want its 50", n, err)
	}
	if got, err := root(reads, 50); err != nil || got != want50 {
		t.Errorf("tree of 50 with the replica behind: %v, %v", got, err)
	}
	// Over HTTP: a fresh event, its proof and /verify are 503 with
	// Retry-After while the replica lacks them; old ones are served.
	for path, want := range map[string]int{
		"/events/55":              http.StatusServiceUnavailable,
		"/verify":                 http.StatusServiceUnavailable,
		"/export":                 http.StatusServiceUnavailable,
		"/export?until=50":        http.StatusOK,
		"/events/10":              http.StatusOK,
		"/events/61":              http.StatusNotFound,
		"/events?after=0&limit=5": http.StatusOK,
	} {
		resp, err := apitest.Client.Get(env.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want || want == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "" {
			t.Errorf("GET %s with the replica behind: %d (Retry-After %q), want %d", path, resp.StatusCode, resp.Header.Get("Retry-After"), want)
		}
	}

	replica.Exec(t, "SELECT pg_wal_replay_resume()")
	if e, err := reads.Get(ctx, 55); err != nil || e.ID != 55 {
		t.Fatalf("Get(55) after replay resumed: %+v, %v", e, err)
	}
	want60, err := root(st, 60)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := root(reads, 60); err != nil || got != want60 {
		t.Fatalf("tree of 60 from the replica: %v, %v", got, err)
	}
	resp, err := apitest.Client.Get(env.URL + "/verify")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/verify after the replica caught up: %d", resp.StatusCode)
	}
	// Tokens are read from the primary: one created while the replica is
	// behind counts at once.
	replica.Exec(t, "SELECT pg_wal_replay_pause()")
	d := sha256.Sum256([]byte("replica-token"))
	if err := st.CreateToken(ctx, store.Token{ID: "rt", Roles: []string{store.RoleReader}, Digest: d, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if tok, err := reads.TokenByDigest(ctx, d); err != nil || tok.ID != "rt" {
		t.Errorf("token created on the primary, read through the read view: %+v, %v", tok, err)
	}
}

// A read replica must serve the same log: one on another schema is refused
// at start.
func TestReadReplicaOtherSchemaRefused(t *testing.T) {
	_, err := postgres.Open(context.Background(), pgtest.Schema(t), postgres.Options{ReadURL: pgtest.Schema(t)})
	if err == nil || !strings.Contains(err.Error(), "schema") {
		t.Fatalf("a replica URL on another schema: %v", err)
	}
}
