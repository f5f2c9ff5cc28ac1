package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/kinds"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/backend"
)

// version is the module version the binary was built from (set by
// go install …@vX.Y.Z), else the version the source declares.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return httpapi.Version
}

type serveConfig struct {
	addr       string
	store      storeConfig
	bodyLimit  int64
	bodyWait   time.Duration
	maxConns   int
	feedBytes  int64
	heavyReads int
	maxStreams int
	heartbeat  time.Duration
	sseRetry   time.Duration
	streamWait time.Duration
	linger     time.Duration
	bursts     int
	shutdown   time.Duration
	logLevel   string
	logFormat  string
	accessLog  bool
	precision  event.TimestampPrecision
	checkpoint checkpointConfig
	witnesses  witnessConfig  // cosign.go
	sec        securityConfig // security.go
	// indexPayload lists the payload paths with an expression index.
	indexPayload stringList
	scanLimit    int
	skew         time.Duration
	kindsFile    string // kinds beyond the built-in ones (internal/kinds)
}

// stringList is a repeatable flag; each use may also list values separated
// by commas.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// envOr returns the environment variable key, or def when it is unset.
func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

// defaultAddr honours HOST and PORT, as the original service did.
func defaultAddr() string {
	return net.JoinHostPort(envOr("HOST", "0.0.0.0"), envOr("PORT", "8093"))
}

func runServe(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cfg serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.addr, "addr", defaultAddr(), "listen address HOST:PORT (env HOST, PORT)")
	cfg.store.flags(fs)
	cfg.store.readFlag(fs)
	fs.Int64Var(&cfg.bodyLimit, "body-limit", 1<<20, "maximum request body in bytes")
	fs.DurationVar(&cfg.bodyWait, "body-timeout", 30*time.Second, "how long a client may take to send a whole request body, from the start of the request (408 after)")
	fs.IntVar(&cfg.maxConns, "max-conns", 12000, "maximum open client connections, streams included; beyond it a connection gets an immediate 503 (lowered to what the open-file limit allows)")
	fs.Int64Var(&cfg.feedBytes, "feed-bytes", 64<<20, "memory, in bytes, the ring of recent events kept for /stream subscribers may hold; older and larger events are read from storage")
	fs.IntVar(&cfg.heavyReads, "max-heavy-reads", 0, "maximum concurrent whole-log reads (/verify, /export); beyond it 503 with Retry-After (0: the number of CPUs)")
	fs.IntVar(&cfg.maxStreams, "max-streams", 10000, "maximum concurrent /stream subscribers")
	fs.DurationVar(&cfg.heartbeat, "heartbeat", 15*time.Second, "interval of keep-alive comments on /stream")
	fs.DurationVar(&cfg.sseRetry, "sse-retry", 2*time.Second, "reconnect delay advertised to /stream clients (the SSE retry field)")
	fs.DurationVar(&cfg.streamWait, "stream-write-timeout", 30*time.Second, "how long one write to a /stream subscriber may block before the stream is dropped")
	fs.DurationVar(&cfg.linger, "stream-linger", 50*time.Millisecond, "while events keep coming, the shortest interval between two writes to one /stream subscriber (negative: write every commit at once)")
	fs.IntVar(&cfg.bursts, "stream-bursts", 20000, "writes per second all /stream subscribers together may take; past it each subscriber's linger stretches (negative: no bound)")
	fs.DurationVar(&cfg.shutdown, "shutdown-timeout", 15*time.Second, "how long a graceful shutdown may take")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&cfg.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&cfg.accessLog, "access-log", true, "log one INFO line per request: method, route, status, duration, token id")
	fs.Var(&cfg.indexPayload, "index-payload", "a payload path (dotted, such as decision_id or args.path) to index for payload.<path>= queries; repeatable or comma-separated")
	fs.IntVar(&cfg.scanLimit, "query-scan-limit", 200000, "how many events one GET /events may examine one by one for q and unindexed payload filters (negative: no limit)")
	fs.StringVar(&cfg.kindsFile, "kinds", "", "a kinds file (YAML, or JSON when named *.json): event kinds beyond the built-in ones, each with a description and optionally a JSON Schema its payloads must satisfy; read at start-up (restart to reload)")
	fs.DurationVar(&cfg.skew, "timestamp-skew", 24*time.Hour, "how far a producer's own timestamp may be from the time the server received the event before its provenance flags it as skewed (counted in audit_stream_timestamp_skewed_total)")
	fs.TextVar(&cfg.precision, "timestamp-precision", event.Microseconds, "precision of server timestamps: microseconds (2026-05-15T03:14:15.123456+00:00) or seconds (2026-05-15T03:14:15+00:00, as the original service stamped)")
	cfg.checkpoint.flags(fs)
	cfg.witnesses.flags(fs)
	cfg.sec.flags(fs)
	showConfig := fs.Bool("print-config", false, "print the effective configuration (secrets redacted) and exit")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream serve [flags]

Serve the audit-stream HTTP API, on the embedded SQLite store (a data
directory) or on PostgreSQL, which several instances may share.

Examples:
  audit-stream                                  # 0.0.0.0:8093, data in ./audit-stream-data
  audit-stream serve --addr 127.0.0.1:9000 --data /var/lib/audit-stream
  audit-stream serve --store postgres://audit@db/audit --signing-key /etc/audit-stream/signing.key
  audit-stream serve --auth required --tls-cert cert.pem --tls-key key.pem
  audit-stream serve --tokens-file /etc/audit-stream/tokens.json --tls-client-ca clients.pem

Every flag can also be set from the environment: --checkpoint-interval is
AUDIT_STREAM_CHECKPOINT_INTERVAL. A flag given here wins. --signing-key and
--tls-key also take AUDIT_STREAM_SIGNING_KEY_FILE, AUDIT_STREAM_TLS_KEY_FILE.
--print-config shows what is in effect and where each value came from.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	src, err := applyEnv(fs, os.LookupEnv) // envflags.go
	if err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 2
	}
	if *showConfig {
		printConfig(stdout, fs, src)
		return 0
	}
	log, err := newLogger(stderr, cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "serve: %v\n", err)
		return 2
	}
	if err := serve(ctx, cfg, log); err != nil {
		log.Error("serve failed", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("bad --log-level %q", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("bad --log-format %q (text or json)", format)
}

func serve(ctx context.Context, cfg serveConfig, log *slog.Logger) error {
	start := time.Now()
	// Before the store opens: a bad kinds file is a configuration error,
	// refused before anything else happens.
	cat := kinds.Builtin()
	if cfg.kindsFile != "" {
		var err error
		if cat, err = kinds.Load(cfg.kindsFile); err != nil {
			return err
		}
		log.Info("kinds file loaded", "file", cfg.kindsFile, "kinds", len(cat.Kinds()), "schemas", cat.Schemas())
	}
	st, spec, err := cfg.store.open(ctx, backend.Serve, log)
	if err != nil {
		return err
	}
	defer st.Close()
	// Indexes are created once (on a large log this takes a while) and
	// dropped when no longer listed.
	if ix, ok := st.(store.PayloadIndexer); ok {
		if err := ix.IndexPayload(ctx, cfg.indexPayload); err != nil {
			return err
		}
	} else if len(cfg.indexPayload) > 0 {
		return fmt.Errorf("--index-payload: this store does not index payload paths")
	}
	authOpt, tlsCfg, err := cfg.sec.load()
	if err != nil {
		return err
	}
	led, err := ledger.Open(ctx, st, ledger.Options{Logger: log, RecentBytes: cfg.feedBytes, Precision: cfg.precision})
	if err != nil {
		return err
	}
	// The last checkpoint is signed at once when the ledger closes, and
	// gets half the shutdown time at most, so the rest of the shutdown
	// still fits in --shutdown-timeout.
	cfg.checkpoint.final = max(cfg.shutdown/2, time.Millisecond)
	checkpointer, err := openCheckpoints(ctx, cfg.checkpoint, spec, st, led, log)
	if err != nil {
		led.Close(context.Background())
		return err
	}
	// The checkpointer outlives the ledger: once the ledger closes it
	// covers the last events, then stops, before the store closes.
	checkpointerDone := make(chan struct{})
	var stopBy time.Time // the shutdown deadline, once a shutdown starts
	defer func() {
		if stopBy.IsZero() {
			<-checkpointerDone // bounded by the checkpointer's own final timeout
			return
		}
		t := time.NewTimer(time.Until(stopBy))
		defer t.Stop()
		select {
		case <-checkpointerDone:
		case <-t.C:
			log.Warn("last checkpoint not stored within --shutdown-timeout; the next start signs it")
		}
	}()
	go func() {
		defer close(checkpointerDone)
		if err := checkpointer.Run(context.WithoutCancel(ctx)); store.IsFull(err) {
			log.Warn("last checkpoint not stored: storage full; the next start signs it", "err", err)
		} else if err != nil {
			log.Error("checkpointer stopped", "err", err)
		}
	}()
	served, metrics, cosign, err := cfg.witnesses.open(ctx, checkpointer, st, log)
	if err != nil {
		led.Close(context.Background())
		return err
	}
	cosignCtx, stopCosign := context.WithCancel(ctx)
	defer stopCosign()
	go cosign(cosignCtx)
	api := httpapi.New(backend.Reads(st), led, httpapi.Options{
		BodyLimit:      cfg.bodyLimit,
		BodyTimeout:    cfg.bodyWait,
		MaxHeavyReads:  cfg.heavyReads,
		BatchBodyLimit: cfg.sec.batchBodyLimit,
		MaxStreams:     cfg.maxStreams,
		Heartbeat:      cfg.heartbeat,
		// A retry under 1 ms would round to 0, which New takes as "default".
		RetryMillis:    max(1, int(cfg.sseRetry/time.Millisecond)),
		WriteTimeout:   cfg.streamWait,
		StreamLinger:   cfg.linger,
		StreamBursts:   cfg.bursts,
		Auth:           authOpt,
		Logger:         log,
		Checkpoints:    served,
		Metrics:        metrics,
		QueryScanLimit: cfg.scanLimit,
		Seals:          checkpointer,
		TimestampSkew:  cfg.skew,
		DataDir:        spec.Dir, // "" for PostgreSQL: the store check is the readiness
		AccessLog:      cfg.accessLog,
		Kinds:          cat,
	})
	if err := cfg.sec.checkAuth(ctx, api, log); err != nil {
		led.Close(context.Background())
		return err
	}
	expireCtx, stopExpire := context.WithCancel(context.Background())
	defer stopExpire()
	go led.ExpireKeys(expireCtx, cfg.sec.idempotencyTTL, min(time.Hour, cfg.sec.idempotencyTTL/4))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		led.Close(context.Background())
		return err
	}
	ln = limitConns(ln, cfg.maxConns, tlsCfg != nil, log)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		// No WriteTimeout: it would cut /stream. Streams set a deadline
		// per write instead.
	}
	head := led.Head()
	log.Info("listening", "addr", ln.Addr().String(), "tls", cfg.sec.tlsMode(), "store", spec.String(), "events", head.ID, "startup", time.Since(start).Round(time.Microsecond))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		led.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdown)
	defer cancel()
	stopBy = time.Now().Add(cfg.shutdown)
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(sctx) }()
	// Answer appends in flight, stop the ledger; streams then end.
	if err := api.Drain(sctx); err != nil {
		log.Warn("drain incomplete", "err", err)
	}
	if err := <-shut; err != nil {
		log.Warn("shutdown incomplete", "err", err)
		srv.Close()
	}
	log.Info("stopped", "events", led.Head().ID)
	return nil
}
