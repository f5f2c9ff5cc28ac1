package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/witnessd"
	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
)

// repeated is a repeatable flag taken verbatim (an origin may hold commas).
type repeated []string

func (l *repeated) String() string     { return strings.Join(*l, " ") }
func (l *repeated) Set(v string) error { *l = append(*l, v); return nil }

func runWitnessServe(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("witness serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("AUDIT_STREAM_WITNESS_ADDR", "127.0.0.1:8094"), "address to listen on (env AUDIT_STREAM_WITNESS_ADDR)")
	keyFile := fs.String("key", envOr("AUDIT_STREAM_WITNESS_KEY", ""), "the witness's private key file, from audit-stream witness keygen (required; env AUDIT_STREAM_WITNESS_KEY)")
	state := fs.String("state", envOr("AUDIT_STREAM_WITNESS_STATE", ""), "directory holding the latest cosigned checkpoint of each log (required; env AUDIT_STREAM_WITNESS_STATE)")
	var logs repeated
	fs.Var(&logs, "log", "a log to witness: its verifier key, or ORIGIN=KEY when its origin is not the key's name; KEY may be @FILE (repeatable; several keys for one origin are all trusted; env AUDIT_STREAM_WITNESS_LOGS, separated by spaces)")
	bodyTimeout := fs.Duration("body-timeout", 10*time.Second, "time a request's body has to arrive")
	level := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream witness serve --key FILE --state DIR --log KEY [--log KEY...] [--addr HOST:PORT]

Run a transparency-log witness speaking C2SP tlog-witness: logs POST their
new checkpoints to /add-checkpoint with a consistency proof from the size
this witness last cosigned; the witness checks the log's signature and the
proof, stores the checkpoint durably, then answers with an Ed25519
cosignature/v1 line. It refuses a checkpoint of an unknown log (404), not
signed by the log's key (403), from another old size than the one it holds
(409, with that size), or that does not extend what it cosigned before
(422: a fork; logged at ERROR with both checkpoints). It witnesses any C2SP
log, not only audit-stream. GET /<sha256 of the origin>/checkpoint serves
the latest checkpoint it cosigned for a log.

Examples:
  audit-stream witness keygen --name witness.example.org/w1 --out w1.key   # prints its verifier key
  audit-stream witness serve --key w1.key --state /var/lib/witness --log "$(curl -s https://audit.example.com/checkpoint/key)"

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	log, err := newLogger(stderr, *level, "text")
	if err != nil {
		fmt.Fprintf(stderr, "witness serve: %v\n", err)
		return 2
	}
	if len(logs) == 0 {
		logs = strings.Fields(os.Getenv("AUDIT_STREAM_WITNESS_LOGS"))
	}
	if *keyFile == "" || *state == "" || len(logs) == 0 {
		fmt.Fprintln(stderr, "witness serve: --key, --state and at least one --log are required")
		return 2
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "witness serve: --key: %v\n", err)
		return 2
	}
	signer, err := witness.NewSigner(string(b))
	if err != nil {
		fmt.Fprintf(stderr, "witness serve: %s: %v\n", *keyFile, err)
		return 2
	}
	var followed []witnessd.Log
	for _, l := range logs {
		origin, v, err := parseLogFlag(l)
		if err != nil {
			fmt.Fprintf(stderr, "witness serve: --log %s: %v\n", l, err)
			return 2
		}
		followed = append(followed, witnessd.Log{Origin: origin, Keys: []note.Verifier{v}})
	}
	w, err := witnessd.Open(witnessd.Options{Dir: *state, Signer: signer, Logs: followed, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "witness serve: %v\n", err)
		return 1
	}
	defer w.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintf(stderr, "witness serve: %v\n", err)
		return 1
	}
	srv := &http.Server{
		Handler:           witnessd.Handler(w, witnessd.HandlerOptions{BodyTimeout: *bodyTimeout, Logger: log}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	for _, l := range w.Logs() {
		log.Info("witnessing", "origin", l.Origin, "cosigned_size", l.Size)
	}
	log.Info("listening", "addr", ln.Addr().String(), "name", w.Name(), "verifier_key", w.VerifierKey())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		log.Error("witness serve failed", "err", err)
		return 1
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown incomplete", "err", err)
	}
	log.Info("stopped")
	return 0
}

// parseLogFlag reads a --log value: a verifier key (the origin is its name)
// or ORIGIN=KEY; KEY may be @FILE. An origin may itself hold '=', so every
// split is tried until the right side is a key.
func parseLogFlag(val string) (string, note.Verifier, error) {
	key := func(s string) (note.Verifier, error) {
		if rest, ok := strings.CutPrefix(s, "@"); ok {
			b, err := os.ReadFile(rest)
			if err != nil {
				return nil, err
			}
			s = string(b)
		}
		return verify.ParseVerifierKey(s)
	}
	if v, err := key(val); err == nil {
		return v.Name(), v, nil
	}
	for i := 0; i < len(val); i++ {
		if val[i] != '=' || i == 0 {
			continue
		}
		if v, err := key(val[i+1:]); err == nil {
			return val[:i], v, nil
		}
	}
	_, err := key(val)
	return "", nil, err
}

func runWitnessKeygen(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("witness keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the witness's name, a schema-less URL such as witness.example.org/w1 (required)")
	out := fs.String("out", "", "file to write the private key to, mode 0600; never overwritten (required)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream witness keygen --name NAME --out FILE

Generate an Ed25519 cosigning key for audit-stream witness serve. The
private key goes to FILE (mode 0600); the verifier key (algorithm 0x04, a
cosignature/v1 key) is printed on stdout: logs pass it to serve --witness,
verifiers to verify --witness-key.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *name == "" || *out == "" {
		fmt.Fprintln(stderr, "witness keygen: --name and --out are required")
		return 2
	}
	skey, vkey, err := witness.GenerateKey(*name)
	if err != nil {
		fmt.Fprintf(stderr, "witness keygen: %v\n", err)
		return 2
	}
	if err := checkpoint.WriteKeyFile(*out, skey); err != nil {
		fmt.Fprintf(stderr, "witness keygen: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, vkey)
	return 0
}
