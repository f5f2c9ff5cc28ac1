package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type verifyFlags struct {
	url, file, checkpoint, receipt, key, origin string
	conn                                        *connFlags
	quiet                                       bool
}

func runVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var f verifyFlags
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.url, "url", "", "verify the live log at this URL")
	fs.StringVar(&f.file, "file", "", "verify an export: NDJSON (audit-stream export) or the original service's JSON array")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "with --file: a signed checkpoint file the export must match (needs --key)")
	fs.StringVar(&f.receipt, "receipt", "", "verify a receipt (GET /events/{id}/receipt) offline; with --url also against the live log")
	fs.StringVar(&f.key, "key", "", "checkpoint verifier key, name+hash+base64, or @FILE (with --url, default: fetched from /checkpoint/key, trust on first use)")
	fs.StringVar(&f.origin, "origin", "", "expected checkpoint origin (default: the key's name)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	f.conn = connectionFlags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  audit-stream verify --url URL [--key KEY]
  audit-stream verify --file FILE [--checkpoint FILE --key KEY]
  audit-stream verify --receipt FILE --key KEY [--url URL]

Re-walk the hash chain, rebuild the Merkle root and compare it with a signed
checkpoint. Prints the /verify report as JSON on stdout; progress on stderr.
Exit status: 0 valid, 1 broken, 2 usage or I/O error.

Examples:
  audit-stream verify --url http://127.0.0.1:8093 --key "$(audit-stream key show)"
  audit-stream verify --file events.ndjson --checkpoint checkpoint.txt --key @log.pub
  audit-stream verify --receipt event-42.tlog-proof --key @log.pub --url http://127.0.0.1:8093

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	var progress io.Writer = stderr
	if f.quiet {
		progress = io.Discard
	}
	var rep verify.TreeReport
	var err error
	switch {
	case f.receipt != "" && f.file == "":
		rep, err = verifyReceipt(ctx, f)
	case f.url != "" && f.file == "" && f.checkpoint == "":
		rep, err = verifyURL(ctx, f, progress)
	case f.file != "" && f.url == "" && f.receipt == "":
		rep, err = verifyFile(ctx, f, progress)
	default:
		fmt.Fprintln(stderr, "verify: give one of --url, --file or --receipt (see --help)")
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 2
	}
	json.NewEncoder(stdout).Encode(rep)
	if !rep.Valid {
		return 1
	}
	return 0
}

// key resolves --key; required says whether it may be absent.
func (f *verifyFlags) verifier(required bool) (note.Verifier, error) {
	if f.key == "" {
		if required {
			return nil, fmt.Errorf("%w: --key is required", errUsage)
		}
		return nil, nil
	}
	return verifierKey(f.key)
}

func verifyURL(ctx context.Context, f verifyFlags, progress io.Writer) (verify.TreeReport, error) {
	var rep verify.TreeReport
	r, err := newRemote(f.url, f.conn)
	if err != nil {
		return rep, err
	}
	v, err := f.verifier(false)
	if err != nil {
		return rep, err
	}
	if v == nil {
		b, err := r.get(ctx, "/checkpoint/key", 4<<10)
		if err != nil {
			return rep, err
		}
		if v, err = verify.ParseVerifierKey(string(b)); err != nil {
			return rep, err
		}
		fmt.Fprintf(progress, "verify: no --key: trusting the key the server serves (%s); pin it with --key\n", bytes.TrimSpace(b))
	}
	cp, signed, err := r.checkpoint(ctx, v, f.origin)
	if err != nil {
		// A checkpoint that does not verify is a broken log, not an
		// I/O error, once it has been fetched.
		if signed == nil {
			return rep, err
		}
		rep.Valid = true
		rep.Fail(0, "checkpoint does not verify: %v", err)
		return rep, nil
	}
	r.http.Timeout = 0
	body, err := r.open(ctx, "/export?until="+strconv.FormatInt(cp.Size, 10))
	if err != nil {
		return rep, err
	}
	defer body.Close()
	return verifyAgainst(ctx, body, cp, progress)
}

// verifyAgainst walks the events read from in and compares the Merkle root
// of the first cp.Size of them with cp.
func verifyAgainst(ctx context.Context, in io.Reader, cp verify.Checkpoint, progress io.Writer) (verify.TreeReport, error) {
	var t verify.Tree
	var atSize *verify.TreeReport
	p := newProgress(progress, cp.Size)
	rep, err := verify.StreamTreeRaw(ctx, eventSource(in), event.ParseStored, verify.StreamOptions{Visit: func(e *event.Event) error {
		p.tick(e.ID)
		if t.Size() == cp.Size {
			atSize = &verify.TreeReport{TreeSize: t.Size(), RootHash: event.Hash(t.Root()).String()}
		}
		return nil
	}}, &t)
	p.done()
	var derr *verify.DecodeError
	if errors.As(err, &derr) {
		rep.Fail(derr.At, "%v", derr)
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	if cp.Size == 0 {
		atSize = &verify.TreeReport{TreeSize: 0, RootHash: event.Hash(verify.EmptyTreeHash).String()}
	}
	if rep.Valid && atSize == nil {
		rep.Fail(rep.Checked+1, "events end at %d but the checkpoint covers %d", rep.Checked, cp.Size)
	}
	if rep.Valid {
		rep.TreeSize, rep.RootHash = atSize.TreeSize, atSize.RootHash
		if want := event.Hash(cp.Hash).String(); rep.RootHash != want {
			rep.Fail(0, "Merkle root mismatch at tree size %d: the checkpoint has %s, the events give %s", cp.Size, want, rep.RootHash)
		}
	}
	return rep, nil
}

func verifyFile(ctx context.Context, f verifyFlags, progress io.Writer) (verify.TreeReport, error) {
	var rep verify.TreeReport
	in, err := os.Open(f.file)
	if err != nil {
		return rep, err
	}
	defer in.Close()
	if f.checkpoint == "" {
		if f.key != "" {
			return rep, fmt.Errorf("%w: --key with --file needs --checkpoint", errUsage)
		}
		var t verify.Tree
		rep, err := verify.StreamTreeRaw(ctx, eventSource(in), event.ParseStored, verify.StreamOptions{}, &t)
		var derr *verify.DecodeError
		if errors.As(err, &derr) {
			rep.Fail(derr.At, "%v", derr)
			err = nil
		}
		return rep, err
	}
	v, err := f.verifier(true)
	if err != nil {
		return rep, err
	}
	signed, err := os.ReadFile(f.checkpoint)
	if err != nil {
		return rep, err
	}
	cp, err := verify.OpenCheckpoint(signed, v, f.origin)
	if err != nil {
		rep.Valid = true
		rep.Fail(0, "checkpoint does not verify: %v", err)
		return rep, nil
	}
	return verifyAgainst(ctx, in, cp, progress)
}

// verifyReceipt checks a receipt offline and, with --url, that the live log
// still holds the event with that hash and extends the receipt's checkpoint.
func verifyReceipt(ctx context.Context, f verifyFlags) (verify.TreeReport, error) {
	rep := verify.TreeReport{Report: verify.Report{Valid: true}}
	v, err := f.verifier(true)
	if err != nil {
		return rep, err
	}
	data, err := os.ReadFile(f.receipt)
	if err != nil {
		return rep, err
	}
	rc, err := verify.ParseReceipt(data)
	if err != nil {
		rep.Fail(0, "%v", err)
		return rep, nil
	}
	cp, err := rc.Verify(v, f.origin)
	rep.TreeSize, rep.RootHash = cp.Size, event.Hash(cp.Hash).String()
	if err != nil {
		rep.Fail(rc.Event.ID, "receipt does not verify: %v", err)
		return rep, nil
	}
	rep.Checked = 1
	if f.url == "" {
		return rep, nil
	}
	r, err := newRemote(f.url, f.conn)
	if err != nil {
		return rep, err
	}
	live, liveSigned, err := r.checkpoint(ctx, v, f.origin)
	if err != nil {
		if liveSigned == nil {
			return rep, err
		}
		rep.Fail(0, "live checkpoint does not verify: %v", err)
		return rep, nil
	}
	var proof []tlog.Hash
	if live.Size > cp.Size {
		if proof, err = r.consistency(ctx, cp.Size, live.Size); err != nil {
			return rep, err
		}
	}
	if err := verify.CheckConsistency(cp, live, proof, rc.Checkpoint, liveSigned); err != nil {
		rep.Fail(rc.Event.ID, "the live log does not extend the receipt's checkpoint: %v", err)
		return rep, nil
	}
	b, err := r.get(ctx, "/events/"+strconv.FormatInt(rc.Event.ID, 10), 16<<20)
	if err != nil {
		return rep, err
	}
	e, err := event.ParseStored(b)
	if err != nil {
		return rep, fmt.Errorf("live event %d: %w", rc.Event.ID, err)
	}
	if e.Hash != rc.Event.Hash {
		rep.Fail(rc.Event.ID, "the live log holds event %d with hash %s, the receipt has %s", e.ID, e.Hash, rc.Event.Hash)
		return rep, nil
	}
	rep.TreeSize, rep.RootHash = live.Size, event.Hash(live.Hash).String()
	return rep, nil
}

// eventSource reads events from an NDJSON export or a JSON array (the
// original service's GET /events dump), detected from the first byte. It
// only splits the input: the verifier's workers parse the events.
func eventSource(in io.Reader) verify.RawSource {
	return func(ctx context.Context, fn func([]byte) error) error {
		br := bufio.NewReaderSize(in, 1<<20)
		first, err := peekNonSpace(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first == '[' {
			dec := json.NewDecoder(br)
			if _, err := dec.Token(); err != nil {
				return err
			}
			var at int64
			for dec.More() {
				at++
				var raw json.RawMessage
				if err := dec.Decode(&raw); err != nil {
					return &verify.DecodeError{At: at, Err: err}
				}
				if err := fn(raw); err != nil {
					return err
				}
			}
			return nil
		}
		sc := bufio.NewScanner(br)
		sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
		for sc.Scan() {
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			if err := fn(sc.Bytes()); err != nil {
				return err
			}
		}
		return sc.Err()
	}
}

func peekNonSpace(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c, br.UnreadByte()
		}
	}
}

// progress reports on stderr every few seconds during long runs.
type progress struct {
	w     io.Writer
	total int64
	start time.Time
	next  time.Time
	n     int64
}

func newProgress(w io.Writer, total int64) *progress {
	now := time.Now()
	return &progress{w: w, total: total, start: now, next: now.Add(2 * time.Second)}
}

func (p *progress) tick(id int64) {
	p.n = id
	if id&4095 != 0 {
		return
	}
	if now := time.Now(); now.After(p.next) {
		p.next = now.Add(2 * time.Second)
		fmt.Fprintf(p.w, "verify: %d/%d events (%.0f events/s)\n", id, p.total, float64(id)/now.Sub(p.start).Seconds())
	}
}

func (p *progress) done() {
	d := time.Since(p.start)
	fmt.Fprintf(p.w, "verify: %d events in %s (%.0f events/s)\n", p.n, d.Round(time.Millisecond), float64(p.n)/d.Seconds())
}
