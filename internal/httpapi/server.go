// Package httpapi serves the audit-stream HTTP API: appends, queries, the
// live tail over Server-Sent Events, and verification.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/clock"
	"github.com/audit-stream/audit-stream/internal/kinds"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/suggest"
	"github.com/audit-stream/audit-stream/internal/web"
	"golang.org/x/mod/sumdb/tlog"
)

// Version is the service version reported by GET /.
var Version = "0.1.0"

// Options configures the API.
type Options struct {
	// BodyLimit caps request bodies; default 1 MiB.
	BodyLimit int64
	// BodyTimeout bounds the time from the start of a request until its
	// whole body has arrived (body.go); default 30 s.
	BodyTimeout time.Duration
	// Kinds is the catalogue of accepted event kinds, with the payload
	// schemas appends are checked against; default kinds.Builtin().
	Kinds *kinds.Catalog
	// MaxStreams caps concurrent /stream subscribers; default 10,000.
	MaxStreams int
	// Heartbeat is the interval of SSE keep-alive comments; default 15 s.
	Heartbeat time.Duration
	// RetryMillis is the reconnect delay sent to SSE clients; default 2000.
	RetryMillis int
	// StreamLinger is the shortest interval between two bursts of events
	// to one /stream subscriber while events keep coming: one wake-up and
	// one write then carry every event of the interval. Longer means
	// fewer, larger writes and a later delivery; an event after a quiet
	// spell goes out at once. Default 50 ms; negative disables it (every
	// commit is written at once, and StreamBursts is ignored).
	StreamLinger time.Duration
	// StreamBursts bounds the bursts per second all /stream subscribers
	// together are sent while events keep coming: with more subscribers
	// than StreamBursts × StreamLinger, each one's linger grows to
	// subscribers / StreamBursts (up to 1 s). A burst costs a wake-up, a
	// write and the client's read whatever it carries, so this bounds
	// the CPU the fan-out takes from the producers. Default 20,000 (the
	// default linger holds up to 1,000 subscribers); negative: no bound.
	StreamBursts int
	// Clock is what stream lingers are waited out by; default clock.Real.
	// (Write deadlines are the connection's own, in real time.)
	Clock clock.Clock
	// WriteTimeout bounds each write to a stream, so a dead peer frees its
	// slot; default 30 s.
	WriteTimeout time.Duration
	// Checkpoints serves the log's checkpoints: the checkpointer, or the
	// cosigner that serves what witnesses cosigned. Without it the
	// verifiable-log routes (checkpoint, proofs, receipts) answer 503.
	Checkpoints Checkpoints
	// Seals serves the provenance seals signed with the checkpoints (the
	// checkpointer); without it GET /provenance/seal answers 503.
	Seals Seals
	// Metrics are more Prometheus series for /metrics (the cosigner's).
	Metrics []prometheus.Collector
	// Auth configures access control (auth.go).
	Auth AuthOptions
	// MaxHeavyReads caps concurrent whole-log reads (/verify, /export);
	// default GOMAXPROCS (heavy.go).
	MaxHeavyReads int
	// MaxHeavyChecks caps concurrent appends whose payloads of kinds with
	// a schema reach HeavyCheckBytes: checking a large payload against a
	// schema may take far longer than parsing it (heavy.go). Default
	// GOMAXPROCS.
	MaxHeavyChecks int
	// BatchBodyLimit caps POST /events/batch bodies; default 16 MiB.
	BatchBodyLimit int64
	// AccessLog writes one INFO line per request (accesslog.go).
	AccessLog bool
	// DataDir is the data directory GET /readyz checks is writable; ""
	// skips that check.
	DataDir string
	// QueryScanLimit bounds the events one GET /events examines one by
	// one for filters no index answers (q, unindexed payload paths);
	// default 200,000, negative: no bound.
	QueryScanLimit int
	// TimestampSkew is how far a producer's timestamp may be from the
	// receive time before its provenance flags it (and the
	// audit_stream_timestamp_skewed_total counter counts it); default 24 h.
	TimestampSkew time.Duration
	// Now is the clock of receive times in provenance; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Store is what the HTTP layer reads: events, the tree and tokens. It never
// appends (that is the ledger's) nor touches meta (the checkpointer's).
type Store interface {
	store.Tokens
	Head(ctx context.Context) (store.Head, error)
	Get(ctx context.Context, id int64) (event.Event, error)
	Latest(ctx context.Context, f store.Filter, limit int) ([]event.Event, error)
	Scan(ctx context.Context, f store.Filter, limit int, fn func(*event.Event) error) error
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	store.Provenances
}

// Server is the HTTP API. It holds no log state of its own.
type Server struct {
	st     Store
	led    *ledger.Ledger
	opt    Options
	log    *slog.Logger
	mux    *http.ServeMux
	sema   chan struct{} // one token per open stream
	heavy  chan struct{} // one token per whole-log read
	checks chan struct{} // one token per large schema check

	mu       sync.Mutex
	draining bool
	appends  sync.WaitGroup

	auth    *authState
	metrics *metrics
	ready   readiness
	handler http.Handler // the mux, instrumented
	table   []Route      // what routes() registered, in order

	cpFrames frameCache // checkpoint frames shared by /stream subscribers

	skewed, replays atomic.Int64 // events flagged skewed; signed requests refused as replays
}

// New returns the API over a store and its ledger.
func New(st Store, led *ledger.Ledger, opt Options) *Server {
	if opt.Clock == nil {
		opt.Clock = clock.Real
	}
	if opt.BodyLimit <= 0 {
		opt.BodyLimit = 1 << 20
	}
	if opt.BodyTimeout <= 0 {
		opt.BodyTimeout = 30 * time.Second
	}
	if opt.Kinds == nil {
		opt.Kinds = kinds.Builtin()
	}
	if opt.MaxStreams <= 0 {
		opt.MaxStreams = 10000
	}
	if opt.Heartbeat <= 0 {
		opt.Heartbeat = 15 * time.Second
	}
	if opt.StreamLinger == 0 {
		opt.StreamLinger = 50 * time.Millisecond
	}
	if opt.StreamBursts == 0 {
		opt.StreamBursts = 20000
	}
	if opt.RetryMillis <= 0 {
		opt.RetryMillis = 2000
	}
	if opt.WriteTimeout <= 0 {
		opt.WriteTimeout = 30 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.TimestampSkew <= 0 {
		opt.TimestampSkew = defaultTimestampSkew
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.QueryScanLimit == 0 {
		opt.QueryScanLimit = 200000
	}
	if opt.MaxHeavyReads <= 0 {
		opt.MaxHeavyReads = runtime.GOMAXPROCS(0)
	}
	if opt.MaxHeavyChecks <= 0 {
		opt.MaxHeavyChecks = runtime.GOMAXPROCS(0)
	}
	if opt.BatchBodyLimit <= 0 {
		opt.BatchBodyLimit = 16 << 20
	}
	s := &Server{st: st, led: led, opt: opt, log: opt.Logger, sema: make(chan struct{}, opt.MaxStreams), heavy: make(chan struct{}, opt.MaxHeavyReads),
		checks: make(chan struct{}, opt.MaxHeavyChecks)}
	s.auth = newAuthState(opt.Auth)
	s.metrics = newMetrics(s)
	s.mux = s.routes()
	s.handler = s.metrics.instrument(s.guardBody(s.mux))
	if opt.AccessLog {
		s.handler = s.accessLog(s.handler)
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// access says who may call a route. Every route declares one, so that the
// auth layer has a single table to enforce.
type access int

const (
	// public routes stay open so anyone can check liveness and verify.
	public access = iota
	// verifierOpen is public verification material (checkpoints, proofs,
	// tiles): open by default, closable by configuration.
	verifierOpen
	// reader routes read the log.
	reader
	// producer routes append.
	producer
	// admin routes manage the service.
	admin
)

// query declares the query parameters a route takes. Any other parameter
// is a 400 naming it: a misspelt filter (?knd=) must not silently return
// everything. The browsers' cache-buster "_" is accepted everywhere.
type query []string

// has reports whether the route takes name; "prefix.*" declares a family.
func (q query) has(name string) bool {
	for _, p := range q {
		if p == name || strings.HasSuffix(p, ".*") && strings.HasPrefix(name, p[:len(p)-1]) {
			return true
		}
	}
	return false
}

// routes is the whole route table: pattern, access, query parameters,
// handler.
func (s *Server) routes() *http.ServeMux {
	m := http.NewServeMux()
	// Every body is capped at BodyLimit (body.go); these routes take
	// another size.
	bodyLimits := map[string]int64{
		"POST /events/batch": s.opt.BatchBodyLimit,
		"POST /admin/tokens": tokenBodyLimit,
	}
	route := func(pattern string, a access, params query, h func(http.ResponseWriter, *http.Request) error) {
		if n, ok := bodyLimits[pattern]; ok {
			next := h
			h = func(w http.ResponseWriter, r *http.Request) error {
				limitBody(r, n)
				return next(w, r)
			}
		}
		m.Handle(pattern, s.guard(a, s.handle(checkQuery(pattern, params, h))))
		s.table = append(s.table, Route{Pattern: pattern, Query: params})
	}
	route("GET /{$}", public, nil, s.index)
	route("GET /healthz", public, nil, s.healthz)
	route("GET /readyz", public, nil, s.readyz)
	route("GET /kinds", public, nil, s.listKinds)
	route("GET /openapi.json", public, nil, s.openAPI)
	route("GET /docs", public, nil, s.docs)
	route("GET /docs/{file}", public, nil, s.docs)
	route("POST /events", producer, nil, s.appendEvent)
	route("GET /events", reader, query{"kind", "source", "limit", "since", "until", "after", "before", "order", "q", payloadParam + "*"}, s.queryEvents)
	route("GET /events/{id}", reader, nil, s.getEvent)
	// access_token: browsers cannot set headers on an EventSource (auth.go).
	route("GET /stream", reader, query{"after", "kind", "source", "since", "until", "q", payloadParam + "*", "checkpoints", "access_token"}, s.stream)
	route("GET /verify", reader, nil, s.verify)
	route("GET /stats", reader, nil, s.stats)
	route("GET /metrics", reader, nil, func(w http.ResponseWriter, r *http.Request) error {
		s.metrics.handler().ServeHTTP(w, r)
		return nil
	})
	// The verifiable log: checkpoints, proofs, receipts, tiles, export.
	route("GET /checkpoint", verifierOpen, nil, s.getCheckpoint)
	route("GET /checkpoint/key", verifierOpen, nil, s.getCheckpointKey)
	route("GET /events/{id}/proof", verifierOpen, query{"tree_size"}, s.inclusionProof)
	route("GET /proof/consistency", verifierOpen, query{"from", "to"}, s.consistencyProof)
	route("GET /tile/{path...}", verifierOpen, nil, s.tile)
	route("GET /events/{id}/receipt", reader, nil, s.receipt)
	// Provenance (provenance.go): per event, the records for verifiers,
	// and the seals, which are verification material like checkpoints.
	route("GET /events/{id}/provenance", reader, nil, s.eventProvenance)
	route("GET /provenance", reader, query{"after", "until"}, s.provenanceRecords)
	route("GET /provenance/seal", verifierOpen, query{"size"}, s.provenanceSeal)
	route("GET /export", reader, query{"after", "until", "since", "kind", "source", "q", payloadParam + "*"}, s.export)
	route("POST /events/batch", producer, nil, s.appendBatch)
	route("POST /admin/tokens", admin, nil, s.createToken)
	route("GET /admin/tokens", admin, nil, s.listTokens)
	route("DELETE /admin/tokens/{id}", admin, nil, s.revokeToken)
	// The dashboard is static and public; the data it shows comes through
	// the routes above, under their own access rules.
	ui := web.Handler(s.opt.Kinds.Set().Names())
	route("GET "+web.Prefix, public, nil, func(w http.ResponseWriter, r *http.Request) error {
		ui.ServeHTTP(w, r)
		return nil
	})
	// A path with a trailing slash that a route serves without it is a 307
	// there, as the original (Starlette) answered; a known path with
	// another method is a 405 naming the methods it takes; any other path
	// is a 404.
	m.Handle("/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		if to, ok := withoutTrailingSlash(m, r); ok {
			w.Header().Set("Location", to)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return nil
		}
		if allow := allowedMethods(m, r); allow != "" {
			w.Header().Set("Allow", allow)
			return problem(http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+allow)
		}
		return problem(http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	}))
	return m
}

// withoutTrailingSlash returns where a path ending in "/" redirects: the
// same path and query without the trailing slashes, if a route serves that
// path (with any method: a 307 keeps the method and body).
func withoutTrailingSlash(m *http.ServeMux, r *http.Request) (string, bool) {
	p := r.URL.EscapedPath()
	if len(p) < 2 || !strings.HasSuffix(p, "/") {
		return "", false
	}
	p = strings.TrimRight(p, "/")
	if p == "" {
		return "", false
	}
	if allowedMethods(m, r) != "" {
		return "", false // the path itself is served (the dashboard's /ui/): a 405, not a redirect
	}
	probe := r.Clone(r.Context())
	probe.URL.RawPath = p
	probe.URL.Path, _ = url.PathUnescape(p)
	if allowedMethods(m, probe) == "" {
		return "", false
	}
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	return p, true
}

// checkQuery refuses a query parameter the route does not declare, and a
// query string that does not parse.
func checkQuery(pattern string, params query, h func(http.ResponseWriter, *http.Request) error) func(http.ResponseWriter, *http.Request) error {
	takes := "takes no query parameters"
	if len(params) > 0 {
		takes = "takes: " + strings.Join(params, ", ")
	}
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.URL.RawQuery == "" {
			return h(w, r)
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return invalidParam(http.StatusBadRequest, "query", "", "value_error", "malformed query string: "+err.Error())
		}
		names := make([]string, 0, len(q))
		for name := range q {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if name == "_" || params.has(name) {
				continue
			}
			shown := name
			if len(shown) > 64 {
				shown = shown[:64] + "..."
			}
			detail := "unknown query parameter " + strconv.Quote(shown)
			if near, d := suggest.Closest(name, params); near != "" && d <= max(2, len(near)/3) {
				detail += " (did you mean " + strconv.Quote(near) + "?)"
			}
			return invalidParam(http.StatusBadRequest, "query", shown, "extra_forbidden", detail+"; "+pattern+" "+takes)
		}
		return h(w, r)
	}
}

// allowedMethods lists the methods that a route other than the catch-all
// serves for r's path.
func allowedMethods(m *http.ServeMux, r *http.Request) string {
	var allow []string
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = method
		if _, pattern := m.Handler(probe); pattern != "" && pattern != "/" {
			allow = append(allow, method)
		}
	}
	return strings.Join(allow, ", ")
}

// guard enforces a route's access level (auth.go). Until tokens exist the
// server runs open, as the original did.
func (s *Server) guard(a access, h http.Handler) http.Handler {
	return s.guardAuth(a, h)
}

// handle adapts a handler core that returns an error into an http.Handler:
// the error becomes a problem+json answer.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		p := toProblem(err)
		switch {
		case p.Status == http.StatusInternalServerError:
			s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "status", p.Status, "err", err)
		case p.Status == http.StatusServiceUnavailable && store.IsFull(err):
			s.log.Warn("append refused: disk full", "method", r.Method, "path", r.URL.Path, "err", err)
		case p.Status < 500:
			// The client's fault (a cut-off or garbled body among
			// them): worth seeing when debugging, never an alert.
			s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", p.Status, "detail", p.Detail)
		}
		writeProblem(w, p)
	})
}

// Drain prepares for shutdown: new appends are refused with 503, appends in
// flight are answered, then the ledger stops, which ends every stream once it
// has delivered the last event.
func (s *Server) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.appends.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.led.Close(ctx)
}

// beginAppend registers an append in flight, or refuses it while draining.
func (s *Server) beginAppend() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return false
	}
	s.appends.Add(1)
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) error {
	authMode := "off"
	if on, err := s.AuthEnabled(r.Context()); err != nil {
		return err
	} else if on {
		authMode = "on"
	}
	endpoints := make(map[string]string, len(s.table))
	for _, rt := range s.table {
		endpoints[rt.Pattern] = summary(rt.Pattern)
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"name":        "audit-stream",
		"version":     Version,
		"auth":        authMode,
		"description": "Append-only governance event stream: gap-free ids, a SHA-256 hash chain, durable storage, live tail and verification.",
		"docs":        "/docs",
		"openapi":     "/openapi.json",
		"endpoints":   endpoints,
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) error {
	head, err := s.st.Head(r.Context())
	if err != nil {
		return err
	}
	var latest *string
	if head.ID > 0 {
		h := head.Hash.String()
		latest = &h
	}
	// Ids are gap-free from 1, so the count is the last id.
	return writeJSON(w, http.StatusOK, map[string]any{"count": head.ID, "last_event_id": head.ID, "latest_hash": latest})
}
