package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/cosigner"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/witness"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
)

// witnessConfig is the serve flags of the witnesses the server asks to
// cosign its checkpoints.
type witnessConfig struct {
	witnesses witnessList
	quorum    int
	timeout   time.Duration
	retry     time.Duration
}

func (c *witnessConfig) flags(fs *flag.FlagSet) {
	fs.Var(&c.witnesses, "witness", "a witness to cosign checkpoints, NAME=URL+KEY: its tlog-witness submission URL and its cosignature verifier key (or @FILE); repeatable, or several separated by spaces")
	fs.IntVar(&c.quorum, "witness-quorum", 0, "how many witnesses must cosign a checkpoint before /checkpoint and receipts serve it (0: all of them)")
	fs.DurationVar(&c.timeout, "witness-timeout", 10*time.Second, "bound on one submission to one witness")
	fs.DurationVar(&c.retry, "witness-retry", 5*time.Second, "wait before submitting again to witnesses that did not cosign, when no newer checkpoint came first")
}

// witnessList is the repeatable --witness flag. The environment variable
// lists several separated by spaces.
type witnessList []cosigner.Witness

func (l *witnessList) String() string {
	var names []string
	for _, w := range *l {
		names = append(names, w.Name+"="+w.Client.URL+"+"+w.Client.Verifier.Name())
	}
	return strings.Join(names, " ")
}

func (l *witnessList) Set(v string) error {
	for _, f := range strings.Fields(v) {
		w, err := parseWitness(f)
		if err != nil {
			return err
		}
		for _, o := range *l {
			if o.Name == w.Name {
				return fmt.Errorf("two witnesses named %q", w.Name)
			}
		}
		*l = append(*l, w)
	}
	return nil
}

// parseWitness reads NAME=URL+KEY. A verifier key is name+hash+base64 and
// its base64 may hold '+', so the URL ends at the first '+' after which a
// valid key (or @FILE) follows.
func parseWitness(v string) (cosigner.Witness, error) {
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return cosigner.Witness{}, fmt.Errorf("--witness %q: want NAME=URL+KEY", v)
	}
	for i := 0; i < len(rest); i++ {
		if rest[i] != '+' {
			continue
		}
		raw, key := rest[:i], rest[i+1:]
		if file, ok := strings.CutPrefix(key, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return cosigner.Witness{}, fmt.Errorf("--witness %s: %w", name, err)
			}
			key = string(b)
		}
		wv, err := witness.NewVerifier(key)
		if err != nil {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cosigner.Witness{}, fmt.Errorf("--witness %s: %q is not an http(s) URL", name, raw)
		}
		return cosigner.Witness{Name: name, Client: &witness.Client{URL: raw, Verifier: wv, HTTP: &http.Client{}}}, nil
	}
	return cosigner.Witness{}, fmt.Errorf("--witness %s: no witness verifier key after the URL (want NAME=URL+KEY, KEY as witness keygen prints it)", name)
}

// open puts a cosigner in front of the checkpointer when witnesses are
// configured; otherwise the checkpointer serves as it is.
func (c witnessConfig) open(ctx context.Context, checkpointer *checkpoint.Checkpointer, st store.Store, log *slog.Logger) (httpapi.Checkpoints, []prometheus.Collector, func(context.Context), error) {
	if len(c.witnesses) == 0 {
		if c.quorum != 0 {
			return nil, nil, nil, fmt.Errorf("--witness-quorum without --witness")
		}
		return checkpointer, nil, func(context.Context) {}, nil
	}
	q := c.quorum
	if q == 0 {
		q = len(c.witnesses)
	}
	cs, err := cosigner.New(ctx, checkpointer, st, st, cosigner.Options{
		Witnesses: c.witnesses, Quorum: q, Timeout: c.timeout, Retry: c.retry, Logger: log,
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--witness-quorum: %w", err)
	}
	for _, w := range c.witnesses {
		log.Info("witness", "name", w.Name, "url", w.Client.URL, "key", w.Client.Verifier.Name())
	}
	log.Info("checkpoints are served once cosigned", "witnesses", len(c.witnesses), "quorum", q)
	return cs, cs.Collectors(), cs.Run, nil
}

// witnessKeyFlags are verify's --witness-key and --quorum: the witnesses a
// verifier trusts and how many of them must have cosigned a checkpoint.
type witnessKeyFlags struct {
	keys     repeated
	quorum   int
	verifier []note.Verifier
}

func (w *witnessKeyFlags) flags(fs *flag.FlagSet) {
	fs.Var(&w.keys, "witness-key", "a witness's cosignature verifier key, or @FILE (repeatable): checkpoints must carry --quorum valid cosignatures by these")
	fs.IntVar(&w.quorum, "quorum", 0, "with --witness-key: how many of those witnesses must have cosigned (default: all)")
}

// parse reads the keys; a mistake in them is a usage error.
func (w *witnessKeyFlags) parse() error {
	if len(w.keys) == 0 {
		if w.quorum != 0 {
			return fmt.Errorf("%w: --quorum needs --witness-key", errUsage)
		}
		return nil
	}
	var vkeys []string
	for _, k := range w.keys {
		if file, ok := strings.CutPrefix(k, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("%w: --witness-key: %v", errUsage, err)
			}
			k = string(b)
		}
		vkeys = append(vkeys, k)
	}
	vs, err := witness.ParseVerifiers(vkeys)
	if err != nil {
		return fmt.Errorf("%w: --witness-key: %v", errUsage, err)
	}
	if w.quorum == 0 {
		w.quorum = len(vs)
	}
	if w.quorum < 0 || w.quorum > len(vs) {
		return fmt.Errorf("%w: --quorum %d with %d witness keys", errUsage, w.quorum, len(vs))
	}
	w.verifier = vs
	return nil
}

// check reports whether a signed checkpoint carries the quorum; with no
// witness keys every checkpoint passes. The error says which witnesses did
// and did not cosign.
func (w *witnessKeyFlags) check(signed []byte) error {
	if len(w.verifier) == 0 {
		return nil
	}
	_, err := witness.CheckQuorum(signed, w.verifier, w.quorum)
	return err
}
