package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// unanswering wraps the real store; once broken, Head fails or hangs as a
// database that is down or wedged does.
type unanswering struct {
	store.Store
	mode atomic.Int32 // 0 healthy, 1 failing, 2 hanging
}

func (u *unanswering) Head(ctx context.Context) (store.Head, error) {
	switch u.mode.Load() {
	case 1:
		return store.Head{}, errors.New("database is locked")
	case 2:
		<-ctx.Done()
		return store.Head{}, ctx.Err()
	}
	return u.Store.Head(ctx)
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st, err := sqlite.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.Open(t.Context(), st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(context.Background())
	wrapped := &unanswering{Store: st}
	spare := filepath.Join(t.TempDir(), "data")
	os.Mkdir(spare, 0o700)
	srv := httptest.NewServer(httpapi.New(wrapped, led, httpapi.Options{DataDir: spare}))
	defer srv.Close()

	probe := func() resp {
		time.Sleep(600 * time.Millisecond) // past the shared verdict of the last probe
		return call(t, "GET", srv.URL+"/readyz", "", "")
	}
	if r := call(t, "GET", srv.URL+"/readyz", "", ""); r.status != 200 || !strings.Contains(string(r.body), `"ready"`) {
		t.Fatalf("healthy: %d %s", r.status, r.body)
	}
	if entries, _ := os.ReadDir(spare); len(entries) != 0 {
		t.Fatalf("the probe left files behind: %v", entries)
	}
	cases := []struct {
		name   string
		break_ func()
		detail string
	}{
		{"store fails", func() { wrapped.mode.Store(1) }, "the store does not answer: database is locked"},
		{"store hangs", func() { wrapped.mode.Store(2) }, "the store did not answer within 2s"},
		{"data directory gone", func() { wrapped.mode.Store(0); os.RemoveAll(spare) }, "the data directory is not writable"},
	}
	for _, c := range cases {
		c.break_()
		r := probe()
		if r.status != 503 || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") || !strings.Contains(r.detail(), c.detail) {
			t.Errorf("%s: %d %s", c.name, r.status, r.body)
		}
		// Liveness is not readiness.
		if h := call(t, "GET", srv.URL+"/healthz", "", ""); h.status != 200 {
			t.Errorf("%s: /healthz %d", c.name, h.status)
		}
	}
	os.Mkdir(spare, 0o700)
	if r := probe(); r.status != 200 {
		t.Fatalf("healed: %d %s", r.status, r.body)
	}
}

// Many probers at once cost one probe per interval, and none of them
// needs a token.
func TestReadyzHammered(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				res, err := apitest.Client.Get(env.URL + "/readyz")
				if err != nil {
					bad.Add(1)
					continue
				}
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of 1280 concurrent probes not ready", bad.Load())
	}
	if entries, _ := filepath.Glob(filepath.Join(env.Dir, ".readyz-*")); len(entries) != 0 {
		t.Fatalf("probe files left behind: %v", entries)
	}
}
