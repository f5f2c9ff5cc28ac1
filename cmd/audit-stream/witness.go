package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/audit-stream/audit-stream/internal/witnessd"
)

// exitAlert is the witness's exit status when the log misbehaved: a bad
// signature, a shrinking tree, or a history that does not extend the one it
// saw before.
const exitAlert = 3

func runWitness(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return runWitnessServe(ctx, args[1:], stdin, stdout, stderr)
		case "keygen":
			return runWitnessKeygen(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("witness", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var remote clientFlags
	remote.register(fs, "") // the log to watch (required)
	key := fs.String("key", "", "the log's verifier key, name+hash+base64, or @FILE (required)")
	origin := fs.String("origin", "", "expected checkpoint origin (default: the key's name)")
	state := fs.String("state", "", "file holding the last checkpoint this witness trusted (required)")
	interval := fs.Duration("interval", 10*time.Second, "time between two checks in daemon mode")
	once := fs.Bool("once", false, "check once and exit: 0 consistent, 3 misbehaviour, 2 usage or I/O error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream witness --url URL --key KEY --state FILE [--interval 10s] [--once]
       audit-stream witness serve --key FILE --state DIR --log VKEY... (a C2SP witness; see witness serve --help)
       audit-stream witness keygen --name NAME --out FILE

Watch a log: fetch its signed checkpoint, check the signature and origin,
check the consistency proof from the last checkpoint this witness stored,
then store the new one (atomically). A bad signature, a shrinking tree or a
failed consistency proof (history rewritten or forked) is reported loudly
with both checkpoints; --once then exits 3, the daemon keeps alerting every
interval and exits 3 when stopped. The first run trusts what it sees.

Examples:
  audit-stream witness --url https://audit.example.com --key @log.pub --state witness.state --once
  audit-stream witness --url https://audit.example.com --key "$(cat log.pub)" --state /var/lib/witness/state

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	url := remote.urlOrEnv()
	if url == "" || *key == "" || *state == "" {
		fmt.Fprintln(stderr, "witness: --url, --key and --state are required")
		return 2
	}
	if *interval <= 0 {
		fmt.Fprintln(stderr, "witness: --interval must be positive")
		return 2
	}
	v, err := verifierKey(*key)
	if err != nil {
		fmt.Fprintf(stderr, "witness: %v\n", err)
		return 2
	}
	c, err := remote.client(url, remoteTimeout)
	if err != nil {
		fmt.Fprintf(stderr, "witness: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	w := &witnessd.Watcher{Source: c, Key: v, Origin: *origin, State: *state, Logger: log}
	if *once {
		return watchExit(log, url, w.Check(ctx))
	}
	alerted := false
	for {
		if code := watchExit(log, url, w.Check(ctx)); code == exitAlert {
			alerted = true
		}
		select {
		case <-ctx.Done():
			if alerted {
				return exitAlert
			}
			return 0
		case <-time.After(*interval):
		}
	}
}

// watchExit maps a watcher round's error to the exit status, logging it.
func watchExit(log *slog.Logger, url string, err error) int {
	var a *witnessd.Alert
	switch {
	case err == nil:
		return 0
	case errors.As(err, &a):
		log.Error("ALERT: the log misbehaved", "url", url, "err", a.Err)
		return exitAlert
	default:
		log.Warn("check failed", "url", url, "err", err)
		return 2
	}
}
