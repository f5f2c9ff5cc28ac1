// Package apitest starts a real audit-stream API for tests: a real SQLite
// file in a temporary directory, the real ledger, and a real TCP listener.
package apitest

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// Env is a running server.
type Env struct {
	URL    string
	Dir    string
	Store  *sqlite.Store
	Ledger *ledger.Ledger
	API    *httpapi.Server
	HTTP   *httptest.Server
	Log    *slog.Logger
}

// Options tunes Start.
type Options struct {
	Dir    string // data directory; default t.TempDir()
	API    httpapi.Options
	Ledger ledger.Options
	// Log, when set, also receives every log line (at Warn and above), so
	// tests can check what the server logs.
	Log io.Writer
}

// Start runs a server until the test ends.
func Start(t testing.TB, opt Options) *Env {
	t.Helper()
	if opt.Dir == "" {
		opt.Dir = t.TempDir()
	}
	var w io.Writer = tWriter{t}
	if opt.Log != nil {
		w = io.MultiWriter(w, opt.Log)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	st, err := sqlite.Open(ctx, opt.Dir)
	if err != nil {
		t.Fatal(err)
	}
	opt.Ledger.Logger = log
	led, err := ledger.Open(ctx, st, opt.Ledger)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	opt.API.Logger = log
	api := httpapi.New(st, led, opt.API)
	srv := httptest.NewServer(api)
	e := &Env{URL: srv.URL, Dir: opt.Dir, Store: st, Ledger: led, API: api, HTTP: srv, Log: log}
	t.Cleanup(e.Stop)
	return e
}

// Stop shuts the server down gracefully, as SIGTERM does. It is safe to call
// more than once.
func (e *Env) Stop() {
	if e.HTTP == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.HTTP.Config.SetKeepAlivesEnabled(false)
	done := make(chan struct{})
	go func() { e.HTTP.Config.Shutdown(ctx); close(done) }()
	e.API.Drain(ctx)
	<-done
	e.HTTP.Close()
	e.Store.Close()
	e.HTTP = nil
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// Client is an http.Client with a timeout suitable for tests.
var Client = &http.Client{Timeout: 30 * time.Second}
