package e2e_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	asclient "github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/jackc/pgx/v5"
	"path/filepath"
)

// The database drops every connection of two instances, three times, while
// producers append: what a PostgreSQL restart or failover does to them,
// without restarting the server other tests share. Every answer is a 201 or
// a 503 with Retry-After; the instances reconnect by themselves, appends and
// the live tail work again, and the chain holds every acknowledged event.
func TestClusterSurvivesDroppedConnections(t *testing.T) {
	base := pgtest.Schema(t)
	u, _ := url.Parse(base)
	app := "audit_stream_" + strings.TrimPrefix(u.Query().Get("search_path"), "audit_stream_test_")
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	admin, err := pgx.Connect(context.Background(), os.Getenv(pgtest.Env))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	appendThroughOutage(t, u.String(), func() {
		for range 3 {
			time.Sleep(400 * time.Millisecond)
			var n int
			if err := admin.QueryRow(context.Background(), "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1", app).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("no connection of the instances was found to drop")
			}
		}
	})
}

// A private PostgreSQL server crashes (immediate shutdown: no checkpoint,
// recovery from the WAL) and comes back on the same port a second later,
// while producers append through two instances of the real binary: during
// the outage they get 503 with Retry-After, the instances reconnect by
// themselves, and every acknowledged event survives the crash recovery in
// one valid chain.
func TestClusterSurvivesPostgresRestart(t *testing.T) {
	t.Parallel()
	pg := pgtest.StartServer(t)
	appendThroughOutage(t, pg.URL, func() {
		time.Sleep(500 * time.Millisecond)
		pg.Stop(true)
		time.Sleep(time.Second)
		pg.Start(t)
	})
}

// appendThroughOutage runs two instances on store, 16 producers appending
// through them and a subscriber of the second, through outage; then checks
// that every answer was a 201 or a 503 with Retry-After, that both
// instances append again, that the subscriber saw every event in order,
// and that the chain holds every acknowledged event.
func appendThroughOutage(t *testing.T, store string, outage func()) {
	skey, _, err := checkpoint.GenerateKey("example.com/faults")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	if err := checkpoint.WriteKeyFile(keyFile, skey); err != nil {
		t.Fatal(err)
	}
	var procs []*e2e.Process
	for range 2 {
		procs = append(procs, e2e.StartStore(t, store, "", "--signing-key", keyFile, "--origin", "example.com/faults", "--checkpoint-interval", "50ms"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The tail may lose its stream when a store read fails; the client
	// resumes it with Last-Event-ID.
	var tailMu sync.Mutex
	var tailed []int64
	var tailErr error
	cl, err := asclient.New(procs[1].URL)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		after := int64(0)
		for ev, err := range cl.Tail(ctx, asclient.TailOptions{After: &after, MaxBackoff: 200 * time.Millisecond}) {
			tailMu.Lock()
			if err != nil {
				tailErr = err
			} else {
				if n := len(tailed); n > 0 && ev.ID != tailed[n-1]+1 || n == 0 && ev.ID != 1 {
					tailErr = fmt.Errorf("tail: event %d after %v", ev.ID, tailed[max(0, n-1):])
				}
				tailed = append(tailed, ev.ID)
			}
			tailMu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		if t.Failed() {
			for i, p := range procs {
				for _, l := range strings.Split(p.Log(), "\n") {
					if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
						t.Logf("instance %d: %s", i, l)
					}
				}
			}
		}
	}()

	var (
		mu      sync.Mutex
		acked   = map[int64]string{}
		refused int
		bad     []string
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"kind":"other","source":"p%d","payload":{"i":%d}}`, w, i)
				resp, err := client.Post(procs[w%2].URL+"/events", "application/json", strings.NewReader(body))
				if err != nil {
					continue
				}
				var a ack
				decodeErr := jsonDecode(resp.Body, &a)
				resp.Body.Close()
				mu.Lock()
				switch {
				case resp.StatusCode == 201 && decodeErr == nil:
					acked[a.EventID] = a.Hash
				case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
					refused++
				default:
					bad = append(bad, fmt.Sprintf("status %d (Retry-After %q)", resp.StatusCode, resp.Header.Get("Retry-After")))
				}
				mu.Unlock()
				if resp.StatusCode == 503 {
					time.Sleep(20 * time.Millisecond)
				}
			}
		})
	}
	outage()
	time.Sleep(1500 * time.Millisecond) // time to recover, under load
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, b := range bad {
		t.Error("an answer other than 201 or 503 with Retry-After:", b)
	}
	// Both instances append again, and the tail on the second sees the
	// events of the first.
	var last ack
	for _, p := range procs {
		evs, status := postAck(p.URL, "/events", "", `{"kind":"other","source":"after"}`)
		if status != 201 {
			t.Fatalf("append after the connections came back: status %d", status)
		}
		acked[evs[0].EventID] = evs[0].Hash
		last = evs[0]
	}
	until := time.Now().Add(20 * time.Second)
	for {
		tailMu.Lock()
		seen, err := int64(len(tailed)), tailErr
		tailMu.Unlock()
		if err != nil && ctx.Err() == nil {
			t.Fatalf("subscriber: %v", err)
		}
		if seen >= last.EventID {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("the subscriber saw up to %d, the head is %d", seen, last.EventID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	chain := exportChain(t, procs[0].URL)
	for id, h := range acked {
		if id > int64(len(chain)) || chain[id-1].Hash.String() != h {
			t.Fatalf("acknowledged event %d is missing or differs", id)
		}
	}
	// The tree is whole too: the server's own verification passes.
	var rep struct {
		Valid   bool  `json:"valid"`
		Checked int64 `json:"checked"`
	}
	resp, err := client.Get(procs[1].URL + "/verify")
	if err != nil {
		t.Fatal(err)
	}
	err = jsonDecode(resp.Body, &rep)
	resp.Body.Close()
	if err != nil || !rep.Valid || rep.Checked != int64(len(chain)) {
		t.Fatalf("/verify after the outage: %+v, %v (chain of %d)", rep, err, len(chain))
	}
	if refused == 0 {
		t.Error("no append was refused with 503 during the outage")
	}
	t.Logf("%d events acknowledged, %d refused with 503 during the outage", len(acked), refused)
}
