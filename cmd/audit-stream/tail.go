package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/verify"
)

func runTail(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		remote  clientFlags
		after   string
		kinds   multiFlag
		sources multiFlag
		check   bool
		keys    multiFlag
		origin  string
		wits    witnessKeyFlags
	)
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	remote.register(fs, "http://localhost:8093")
	fs.StringVar(&after, "after", "", "start after this event id (0: the whole history); default: only new events")
	fs.Var(&kinds, "kind", "only events of this kind (repeatable: any of them)")
	fs.Var(&sources, "source", "only events from this source (repeatable: any of them)")
	fs.BoolVar(&check, "verify", false, "verify every event against the log's signed checkpoints as it reads, and print only verified events (needs --key)")
	fs.Var(&keys, "key", "with --verify: the log's checkpoint verifier key, name+hash+base64, or @FILE (repeatable: any of them, across a key rotation)")
	fs.StringVar(&origin, "origin", "", "with --verify: the checkpoints' origin (default: the key's name)")
	wits.flags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream tail [--after N] [--kind K]... [--source S]... [--url URL]
       audit-stream tail --verify --key KEY [--witness-key KEY... [--quorum N]] [...]

Follow the log live and print each event as one line of JSON (NDJSON), in id
order. When the connection drops it reconnects by itself, resuming after the
last event printed: nothing is lost or printed twice. Reconnects are reported
on stderr. Stop it with Ctrl-C.

With --verify it also checks, as it reads, every event's hash and chain link,
every checkpoint's signature (and witness cosignatures) and consistency with
the one before, and that every event is a leaf of the signed tree: an event is
printed only once a signed checkpoint covers it (about a checkpoint interval
after it is appended). On any mismatch it stops, prints what mismatched (and
the signed checkpoints involved, as evidence) on stderr, and exits 3.

Examples:
  audit-stream tail
  audit-stream tail --after 0 | jq -c 'select(.source == "gateway")'
  audit-stream tail --kind request_denied --kind tool_invocation_denied --url https://audit.internal
  audit-stream tail --verify --key @log.pub --witness-key @w1.pub --witness-key @w2.pub --quorum 2

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	opt := client.TailOptions{
		Kinds:   kinds,
		Sources: sources,
		OnRetry: func(err error, wait time.Duration) {
			fmt.Fprintf(stderr, "tail: %v; reconnecting in %v\n", err, wait.Round(time.Millisecond))
		},
	}
	if after != "" {
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil || n < 0 {
			fmt.Fprintf(stderr, "tail: --after must be a non-negative event id, got %q\n", after)
			return 2
		}
		opt.After = &n
	}
	if check {
		v, err := tailVerify(keys, origin, &wits)
		if err != nil {
			fmt.Fprintf(stderr, "tail: %v\n", err)
			return 2
		}
		opt.Verify = v
	} else if len(keys) > 0 || origin != "" || len(wits.keys) > 0 || wits.quorum != 0 {
		fmt.Fprintln(stderr, "tail: --key, --origin, --witness-key and --quorum go with --verify")
		return 2
	}
	c, err := remote.client(remote.url, 0)
	if err != nil {
		fmt.Fprintf(stderr, "tail: %v\n", err)
		return 2
	}
	var line []byte
	for ev, err := range c.Tail(ctx, opt) {
		if err != nil {
			if ctx.Err() != nil {
				return 0 // interrupted: the normal way to stop
			}
			fmt.Fprintf(stderr, "tail: %v\n", err)
			var ve *client.VerifyError
			if errors.As(err, &ve) {
				// The evidence: signed notes anyone can check.
				if ve.Previous != nil {
					fmt.Fprintf(stderr, "--- last verified checkpoint ---\n%s", ve.Previous)
				}
				if ve.Checkpoint != nil {
					fmt.Fprintf(stderr, "--- offending checkpoint ---\n%s", ve.Checkpoint)
				}
				return 3
			}
			return 1
		}
		// One write per event, unbuffered: a pipe reader sees each event
		// as it happens.
		line = append(ev.AppendJSON(line[:0]), '\n')
		if _, err := stdout.Write(line); err != nil {
			fmt.Fprintf(stderr, "tail: %v\n", err)
			return 1
		}
	}
	return 0
}

// tailVerify builds the verification --verify asks for.
func tailVerify(keys []string, origin string, wits *witnessKeyFlags) (*client.TailVerify, error) {
	if len(keys) == 0 {
		return nil, errors.New("--verify needs --key: the log's verifier key, obtained out of band (GET /checkpoint/key on first use, then pinned)")
	}
	v := &client.TailVerify{Origin: origin}
	for _, k := range keys {
		if file, ok := strings.CutPrefix(k, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("--key: %w", err)
			}
			k = string(b)
		}
		if _, err := verify.ParseVerifierKey(k); err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		v.LogKeys = append(v.LogKeys, strings.TrimSpace(k))
	}
	if err := wits.parse(); err != nil {
		return nil, err
	}
	for _, k := range wits.keys {
		if file, ok := strings.CutPrefix(k, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return nil, fmt.Errorf("--witness-key: %w", err)
			}
			k = string(b)
		}
		v.WitnessKeys = append(v.WitnessKeys, strings.TrimSpace(k))
	}
	v.Quorum = wits.quorum
	return v, nil
}
