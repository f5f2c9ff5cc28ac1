package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

func startLogged(t *testing.T, accessLog bool) (url string, logs *syncBuffer, secret, tokenID string) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	led, err := ledger.Open(t.Context(), st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close(context.Background()) })
	secret, tok, err := auth.New(auth.Spec{Roles: []string{store.RoleAdmin}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	logs = &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := httptest.NewServer(httpapi.New(st, led, httpapi.Options{AccessLog: accessLog, Logger: log, Heartbeat: 10 * time.Millisecond}))
	t.Cleanup(srv.Close)
	return srv.URL, logs, secret, tok.ID
}

func TestAccessLog(t *testing.T) {
	t.Parallel()
	url, logs, secret, id := startLogged(t, true)
	call(t, "POST", url+"/events", secret, `{"kind":"other","source":"s","payload":{"card":"4111-SECRET-PAYLOAD"}}`, "Content-Type", "application/json")
	call(t, "GET", url+"/events/1", secret, "")
	call(t, "GET", url+"/stats", "tok_wrong", "")
	call(t, "GET", url+"/nowhere?x=1", "", "")
	// The stream with its token in the URL, as browsers send it.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/stream?access_token="+secret, nil)
	if res, err := apitest.Client.Do(req); err == nil {
		io.Copy(io.Discard, res.Body) // until the deadline hangs up
		res.Body.Close()
	}
	cancel()

	want := []struct {
		method, route string
		status        int
		token         string
	}{
		{"POST", "POST /events", 201, id},
		{"GET", "GET /events/{id}", 200, id},
		{"GET", "GET /stats", 401, ""},
		{"GET", "other", 404, ""},
		{"GET", "GET /stream", 200, id},
	}
	deadline := time.Now().Add(5 * time.Second)
	var lines []map[string]any
	for {
		lines = lines[:0]
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "request" {
				lines = append(lines, m)
			}
		}
		if len(lines) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(lines) != len(want) {
		t.Fatalf("%d request lines, want %d:\n%s", len(lines), len(want), logs)
	}
	for i, w := range want {
		l := lines[i]
		tok, _ := l["token"].(string)
		if l["level"] != "INFO" || l["method"] != w.method || l["route"] != w.route || l["status"] != float64(w.status) || tok != w.token || l["duration"] == nil {
			t.Errorf("line %d: %v, want %+v", i, l, w)
		}
	}
	all := logs.String()
	for _, secretThing := range []string{secret, "4111-SECRET-PAYLOAD", "access_token", "tok_wrong", "x=1"} {
		if strings.Contains(all, secretThing) {
			t.Errorf("the log holds %q:\n%s", secretThing, all)
		}
	}
}

func TestAccessLogOff(t *testing.T) {
	t.Parallel()
	url, logs, secret, _ := startLogged(t, false)
	call(t, "GET", url+"/stats", secret, "")
	call(t, "GET", url+"/stats", "", "")
	if strings.Contains(logs.String(), `"msg":"request"`) {
		t.Fatalf("--access-log=false still logs requests:\n%s", logs)
	}
}
