// Package apitest starts a real audit-stream API for tests: a real store (a
// SQLite file in a temporary directory by default, or any store name the
// server takes, such as a PostgreSQL URL), the real ledger, and a real TCP
// listener.
package apitest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/backend"
)

// Env is a running server.
type Env struct {
	URL string
	// Dir is the SQLite data directory ("" on a PostgreSQL store).
	Dir    string
	Store  store.Store
	Ledger *ledger.Ledger
	API    *httpapi.Server
	HTTP   *httptest.Server
	Log    *slog.Logger
	// Checkpoints signs checkpoints with Key every CheckpointInterval.
	Checkpoints *checkpoint.Checkpointer
	Key         *checkpoint.Key

	stopCheckpoints context.CancelFunc
	checkpointsDone chan struct{}
}

// Options tunes Start.
type Options struct {
	Dir string // data directory; default t.TempDir()
	// Store, if set, names the store instead of Dir (a postgres:// URL:
	// several Envs on one URL are instances sharing the database).
	Store string
	// StoreRead names a read replica of the PostgreSQL Store for the
	// API's reads, as --store-read does.
	StoreRead string
	// Addr is the listen address; default a free port on 127.0.0.1. Tests
	// that stop a server and start another on the same data directory pass
	// the first one's address, so that clients reconnect to the same URL.
	Addr   string
	API    httpapi.Options
	Ledger ledger.Options
	// CheckpointInterval is the checkpointer's interval; default 10 ms so
	// tests need not wait.
	CheckpointInterval time.Duration
	// Key signs checkpoints; default the data directory's key (created
	// on first use), as the server keeps it.
	Key *checkpoint.Key
	// Origin is the checkpoint origin; default the stored log's, else
	// "audit-stream/test".
	Origin string
	// IndexPayload lists payload paths to index (sqlite.Store.IndexPayload);
	// nil leaves the store's payload indexes as they are.
	IndexPayload []string
	// Wrap, when set, wraps the store the ledger, checkpointer and API use
	// (e.g. with faultstore to fail writes).
	Wrap func(store.Store) store.Store
	// Log, when set, also receives every log line (at Warn and above), so
	// tests can check what the server logs.
	Log io.Writer
}

// Start runs a server until the test ends.
func Start(t testing.TB, opt Options) *Env {
	t.Helper()
	if opt.Dir == "" && opt.Store == "" {
		opt.Dir = t.TempDir()
	}
	name := opt.Store
	if name == "" {
		name = opt.Dir
	}
	spec, err := backend.Parse(name)
	if err == nil {
		spec, err = spec.WithReplica(opt.StoreRead)
	}
	if err != nil {
		t.Fatal(err)
	}
	var w io.Writer = tWriter{t}
	if opt.Log != nil {
		w = io.MultiWriter(w, opt.Log)
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx := context.Background()
	st, err := backend.Open(ctx, spec, backend.Serve, log)
	if err != nil {
		t.Fatal(err)
	}
	if opt.IndexPayload != nil {
		ix, ok := st.(store.PayloadIndexer)
		if !ok {
			st.Close()
			t.Fatalf("%T does not index payload paths", st)
		}
		if err := ix.IndexPayload(ctx, opt.IndexPayload); err != nil {
			st.Close()
			t.Fatal(err)
		}
	}
	opt.Ledger.Logger = log
	var used store.Store = st
	if opt.Wrap != nil {
		used = opt.Wrap(st)
	}
	led, err := ledger.Open(ctx, used, opt.Ledger)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	// Like the real server: the log keeps its origin and its key (kept in
	// the data directory) across restarts; another one would be refused.
	if opt.Origin == "" {
		if opt.Origin, err = checkpoint.StoredOrigin(ctx, st); err != nil {
			t.Fatal(err)
		}
		if opt.Origin == "" {
			opt.Origin = "audit-stream/test"
		}
	}
	if opt.Key == nil {
		if opt.Key, _, err = checkpoint.LoadOrCreateKey(opt.Dir, opt.Origin); err != nil {
			t.Fatal(err)
		}
	}
	if opt.CheckpointInterval == 0 {
		opt.CheckpointInterval = 10 * time.Millisecond
		if _, bench := t.(*testing.B); bench {
			// Benchmarks measure the server as it runs in production,
			// where signing 100 checkpoints a second would be a cost
			// no deployment pays.
			opt.CheckpointInterval = time.Second
		}
	}
	checkpoints, err := checkpoint.Open(ctx, used, led.Feed(), checkpoint.Options{
		Origin: opt.Origin, Key: opt.Key, Interval: opt.CheckpointInterval, Logger: log,
	})
	if err != nil {
		led.Close(ctx)
		st.Close()
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); checkpoints.Run(cctx) }()
	opt.API.Logger = log
	opt.API.Checkpoints = checkpoints
	opt.API.Seals = checkpoints
	if opt.API.DataDir == "" {
		opt.API.DataDir = opt.Dir
	}
	api := httpapi.New(backend.Reads(used), led, opt.API)
	srv := httptest.NewUnstartedServer(api)
	if opt.Addr != "" {
		ln, err := net.Listen("tcp", opt.Addr)
		if err != nil {
			led.Close(ctx)
			st.Close()
			t.Fatal(err)
		}
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	e := &Env{URL: srv.URL, Dir: spec.Dir, Store: st, Ledger: led, API: api, HTTP: srv, Log: log,
		Checkpoints: checkpoints, Key: opt.Key, stopCheckpoints: cancel, checkpointsDone: done}
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
	// The ledger is closed: the checkpointer covers the last events, then
	// stops; only then may the store close.
	e.stopCheckpoints()
	<-e.checkpointsDone
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
