package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/backend"
)

// checkpointConfig is the serve flags of the checkpointer.
type checkpointConfig struct {
	origin     string
	signingKey string
	interval   time.Duration
	copy       string
	recover    bool
	rotate     bool
	final      time.Duration // bound on the last checkpoint at shutdown; set by serve
}

func (c *checkpointConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.origin, "origin", envOr("AUDIT_STREAM_ORIGIN", ""), "checkpoint origin line, the log's name (default audit-stream/<log id>; env AUDIT_STREAM_ORIGIN)")
	fs.StringVar(&c.signingKey, "signing-key", envOr("AUDIT_STREAM_SIGNING_KEY", ""), "the signing key: a file holding a note private key (audit-stream keygen) or an Ed25519 PKCS#8 PEM key (openssl genpkey -algorithm ed25519; named by the origin), or env:NAME to read it from the environment variable NAME; default: generated on first start and kept in the data directory (env AUDIT_STREAM_SIGNING_KEY)")
	fs.DurationVar(&c.interval, "checkpoint-interval", time.Second, "least time between two signed checkpoints")
	fs.StringVar(&c.copy, "checkpoint-copy", envOr("AUDIT_STREAM_CHECKPOINT_COPY", ""),
		"also keep the latest signed checkpoint in this file; outside the data directory, it makes start-up refuse a data directory restored from an older copy (env AUDIT_STREAM_CHECKPOINT_COPY)")
	fs.BoolVar(&c.rotate, "rotate", false,
		"accept an --origin or signing key other than the log's (recorded at its first start): re-sign the latest checkpoint under them; give verifiers and witnesses the new verifier key")
	fs.BoolVar(&c.recover, "recover-resign", false,
		"start even though the log has no checkpoint or does not extend the last one (a restored backup, a lost checkpoint), and sign it as it stands; "+
			"logged at ERROR and recorded in the data directory; remove it after that start")
}

// refusalHelp explains a start-up refused by the checkpoint check.
const refusalHelp = "refusing to start: the log does not extend the last checkpoint this server signed. Either the data was tampered with (history rewritten, the stored checkpoint deleted), or it was restored from an older copy and acknowledged events were lost. Investigate before anything else; compare with what your witnesses hold. If you know why and accept the log as it now stands, start once with --recover-resign: the server then signs it, logs this at ERROR and records it in the data directory, and witnesses that hold an earlier checkpoint will report the break"

// openCheckpoints resolves the origin and the key and opens the
// checkpointer. It logs the verifier key, which clients and witnesses pin.
func openCheckpoints(ctx context.Context, cfg checkpointConfig, spec backend.Spec, st store.Store, led *ledger.Ledger, log *slog.Logger) (*checkpoint.Checkpointer, error) {
	if cfg.interval <= 0 {
		return nil, fmt.Errorf("--checkpoint-interval must be positive, got %s", cfg.interval)
	}
	origin := cfg.origin
	if origin == "" {
		id, err := checkpoint.LogID(ctx, st)
		if err != nil {
			return nil, err
		}
		origin = "audit-stream/" + id
	}
	var key *checkpoint.Key
	var err error
	switch {
	case cfg.signingKey != "":
		key, err = checkpoint.LoadKey(cfg.signingKey, origin)
	case spec.Shared():
		// Every instance must sign with the same key, and a private
		// key does not belong in the database beside the log.
		return nil, fmt.Errorf("a shared (PostgreSQL) store needs --signing-key, the same file on every instance (make one with audit-stream keygen)")
	default:
		var created bool
		key, created, err = checkpoint.LoadOrCreateKey(spec.Dir, origin)
		if created {
			log.Info("generated a checkpoint signing key", "file", checkpoint.KeyFile)
		}
	}
	if err != nil {
		return nil, err
	}
	if key.Signer.Name() != origin {
		log.Warn("the signing key's name differs from the origin; verifiers must pass the origin explicitly", "key", key.Signer.Name(), "origin", origin)
	}
	checkpointer, err := checkpoint.Open(ctx, st, led.Feed(), checkpoint.Options{
		Origin: origin, Key: key, Interval: cfg.interval, FinalTimeout: cfg.final, Copy: cfg.copy, Recover: cfg.recover, Rotate: cfg.rotate, Logger: log,
	})
	if errors.Is(err, checkpoint.ErrMismatch) || errors.Is(err, checkpoint.ErrUnsigned) {
		return nil, fmt.Errorf("%w; %s", err, refusalHelp)
	}
	if errors.Is(err, checkpoint.ErrIdentity) {
		return nil, fmt.Errorf("%w; refusing to start: verifiers and witnesses pin the log's origin and verifier key. If this is a planned rotation, start once with --rotate and hand out the new verifier key (audit-stream key show)", err)
	}
	if err != nil {
		return nil, err
	}
	log.Info("checkpoints", "origin", origin, "verifier_key", key.VerifierKey, "size", checkpointer.Latest().Size)
	return checkpointer, nil
}
