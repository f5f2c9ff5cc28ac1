package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/provenance"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type verifyFlags struct {
	remote                                 clientFlags
	file, checkpoint, receipt, key, origin string
	quiet                                  bool
	witnesses                              witnessKeyFlags // cosign.go
	provenance                             provenanceFlags // verifyprov.go
}

func runVerify(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var f verifyFlags
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.remote.register(fs, "") // verify the live log at this URL
	fs.StringVar(&f.file, "file", "", "verify an export: NDJSON (audit-stream export) or the original service's JSON array")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "with --file: a signed checkpoint file the export must match (needs --key)")
	fs.StringVar(&f.receipt, "receipt", "", "verify a receipt (GET /events/{id}/receipt) offline; with --url also against the live log")
	fs.StringVar(&f.key, "key", "", "checkpoint verifier key, name+hash+base64, or @FILE (with --url, default: fetched from /checkpoint/key, trust on first use)")
	fs.StringVar(&f.origin, "origin", "", "expected checkpoint origin (default: the key's name)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	f.witnesses.flags(fs)
	f.provenance.flags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage:
  audit-stream verify --url URL [--key KEY]
  audit-stream verify --file FILE [--checkpoint FILE --key KEY]
  audit-stream verify --receipt FILE --key KEY [--url URL]
  (each also with --witness-key KEY... [--quorum N]: the checkpoint must be cosigned)
  audit-stream verify --url URL --provenance [--producer-key KEY]... [--signed-source S]...
  audit-stream verify --file FILE --checkpoint FILE --key KEY --provenance-file FILE --seal FILE [--producer-key KEY]...

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
	if f.file == "" && f.receipt == "" && f.checkpoint == "" {
		f.remote.url = f.remote.urlOrEnv()
	}
	if err := f.witnesses.parse(); err != nil {
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 2
	}
	if err := f.provenance.parse(); err != nil {
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 2
	}
	switch {
	case f.provenance.file != "" && (f.file == "" || f.checkpoint == ""):
		fmt.Fprintln(stderr, "verify: --provenance-file checks an export: give --file and --checkpoint (and --key)")
		return 2
	case f.provenance.file != "":
		f.provenance.check = true
	case f.provenance.check && (f.remote.url == "" || f.file != "" || f.receipt != ""):
		fmt.Fprintln(stderr, "verify: --provenance and --producer-key check a live log (--url), or an export with --provenance-file and --seal")
		return 2
	}
	var progress io.Writer = stderr
	if f.quiet {
		progress = io.Discard
	}
	var rep verify.TreeReport
	var proven *provenEvent
	var prov *provenance.Report
	var err error
	switch {
	case f.receipt != "" && f.file == "":
		rep, proven, err = verifyReceipt(ctx, f, stderr) // what it proves is the answer, not progress
	case f.remote.url != "" && f.file == "" && f.checkpoint == "":
		rep, prov, err = verifyURL(ctx, f, progress)
	case f.file != "" && f.remote.url == "" && f.receipt == "":
		rep, prov, err = verifyFile(ctx, f, progress)
	default:
		fmt.Fprintln(stderr, "verify: give one of --url, --file or --receipt (see --help)")
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 2
	}
	switch {
	case proven != nil:
		json.NewEncoder(stdout).Encode(receiptReport{rep, proven})
	case f.provenance.check:
		json.NewEncoder(stdout).Encode(struct {
			verify.TreeReport
			Provenance *provenance.Report `json:"provenance"`
		}{rep, prov})
	default:
		json.NewEncoder(stdout).Encode(rep)
	}
	if !rep.Valid {
		return 1
	}
	return 0
}

// verifier resolves --key; required says whether it may be absent.
func (f *verifyFlags) verifier(required bool) (note.Verifier, error) {
	if f.key == "" {
		if required {
			return nil, fmt.Errorf("%w: --key is required", errUsage)
		}
		return nil, nil
	}
	return verifierKey(f.key)
}

func verifyURL(ctx context.Context, f verifyFlags, progress io.Writer) (verify.TreeReport, *provenance.Report, error) {
	var rep verify.TreeReport
	c, err := f.remote.client(f.remote.url, remoteTimeout)
	if err != nil {
		return rep, nil, err
	}
	v, err := f.verifier(false)
	if err != nil {
		return rep, nil, err
	}
	if v == nil {
		key, err := c.VerifierKey(ctx)
		if err != nil {
			return rep, nil, err
		}
		if v, err = verify.ParseVerifierKey(key); err != nil {
			return rep, nil, err
		}
		fmt.Fprintf(progress, "verify: no --key: trusting the key the server serves (%s); pin it with --key\n", key)
	}
	signed, err := c.Checkpoint(ctx)
	if err != nil {
		return rep, nil, err
	}
	cp, broken, err := f.openCheckpoint(signed, v, "the server's checkpoint", "the server's checkpoint")
	if err != nil || broken != nil {
		return *broken, nil, err
	}
	if cp.Size == 0 {
		// Until 0 would mean the head: the empty tree needs no events.
		rep, err = verifyAgainst(ctx, strings.NewReader(""), cp, progress)
	} else {
		var body io.ReadCloser
		if body, err = c.Export(ctx, client.ExportOptions{Until: cp.Size}); err != nil {
			return rep, nil, err
		}
		rep, err = verifyAgainst(ctx, body, cp, progress)
		body.Close()
	}
	if err != nil || !rep.Valid || !f.provenance.check {
		return rep, nil, err
	}
	prov, err := checkProvenance(ctx, c, v, cp, f.provenance, &rep)
	return rep, prov, err
}

// remoteTimeout bounds each request of verify and witness but the export:
// a checkpoint, a key, a proof, an event.
const remoteTimeout = 30 * time.Second

// openCheckpoint checks a signed checkpoint with the key, --origin and the
// witnesses' cosignatures. One that fails them is a broken log, reported
// in broken; a key or origin that does not fit it is an input error (what
// names the checkpoint in it, whose in the witnesses' reason).
func (f *verifyFlags) openCheckpoint(signed []byte, v note.Verifier, what, whose string) (cp verify.Checkpoint, broken *verify.TreeReport, err error) {
	fail := func(format string, err error) (verify.Checkpoint, *verify.TreeReport, error) {
		rep := &verify.TreeReport{Report: verify.Report{Valid: true}}
		rep.Fail(0, format, err)
		return cp, rep, nil
	}
	cp, err = verify.OpenCheckpoint(signed, v, f.origin)
	if err != nil {
		if ierr := checkpointInputError(what, err, v); ierr != nil {
			return cp, &verify.TreeReport{}, ierr
		}
		return fail("checkpoint does not verify: %v", err)
	}
	if err := f.witnesses.check(signed); err != nil {
		return fail(whose+" is not cosigned by the witnesses: %v", err)
	}
	return cp, nil, nil
}

// verifyAgainst walks the events read from in and compares the Merkle root
// of the first cp.Size of them with cp.
func verifyAgainst(ctx context.Context, in io.Reader, cp verify.Checkpoint, progress io.Writer) (verify.TreeReport, error) {
	p := newProgressLine(progress, "verify:", cp.Size)
	want := &verify.Target{Size: cp.Size, What: "the checkpoint", Root: func() (tlog.Hash, error) { return cp.Hash, nil }}
	rep, err := verify.CheckTreeRaw(ctx, verify.ExportSource(in), event.ParseStored, want, verify.StreamOptions{Visit: func(e *event.Event) error {
		p.tick(e.ID)
		return nil
	}})
	p.done()
	return rep, err
}

func verifyFile(ctx context.Context, f verifyFlags, progress io.Writer) (verify.TreeReport, *provenance.Report, error) {
	rep, prov, err := verifyFileIn(ctx, f, progress)
	var ierr *verify.InputError
	if errors.As(err, &ierr) {
		return rep, nil, fmt.Errorf("%s: %w", f.file, err)
	}
	return rep, prov, err
}

func verifyFileIn(ctx context.Context, f verifyFlags, progress io.Writer) (verify.TreeReport, *provenance.Report, error) {
	var rep verify.TreeReport
	in, err := os.Open(f.file)
	if err != nil {
		return rep, nil, err
	}
	defer in.Close()
	if f.checkpoint == "" {
		if f.key != "" || len(f.witnesses.verifier) > 0 {
			return rep, nil, fmt.Errorf("%w: --key or --witness-key with --file needs --checkpoint", errUsage)
		}
		rep, err = verify.CheckTreeRaw(ctx, verify.ExportSource(in), event.ParseStored, nil, verify.StreamOptions{})
		return rep, nil, err
	}
	v, err := f.verifier(true)
	if err != nil {
		return rep, nil, err
	}
	signed, err := os.ReadFile(f.checkpoint)
	if err != nil {
		return rep, nil, err
	}
	cp, broken, err := f.openCheckpoint(signed, v, f.checkpoint, "the checkpoint")
	if err != nil || broken != nil {
		return *broken, nil, err
	}
	rep, err = verifyAgainst(ctx, in, cp, progress)
	if err != nil || !rep.Valid || f.provenance.file == "" {
		return rep, nil, err
	}
	prov, err := checkProvenanceFile(ctx, f.file, v, cp, f.provenance, &rep)
	return rep, prov, err
}

// provenEvent names the event a receipt proves.
type provenEvent struct {
	ID        int64  `json:"event_id"`
	Hash      string `json:"hash"`
	Kind      string `json:"kind"`
	Source    string `json:"source"`
	Timestamp string `json:"timestamp"`
}

// receiptReport is the report of a receipt check: the /verify shape and
// the event the receipt is about.
type receiptReport struct {
	verify.TreeReport
	Event *provenEvent `json:"event"`
}

// verifyReceipt checks a receipt offline and, with --url, that the live log
// still holds the event with that hash and extends the receipt's checkpoint.
func verifyReceipt(ctx context.Context, f verifyFlags, out io.Writer) (verify.TreeReport, *provenEvent, error) {
	rep := verify.TreeReport{Report: verify.Report{Valid: true}}
	v, err := f.verifier(true)
	if err != nil {
		return rep, nil, err
	}
	data, err := os.ReadFile(f.receipt)
	if err != nil {
		return rep, nil, err
	}
	rc, err := verify.ParseReceipt(event.TrimBOM(data))
	if err != nil {
		return rep, nil, &verify.InputError{Reason: fmt.Sprintf("%s is not an audit-stream receipt (GET /events/{id}/receipt): %v", f.receipt, err)}
	}
	ev := &provenEvent{ID: rc.Event.ID, Hash: rc.Event.Hash.String(), Kind: rc.Event.Kind, Source: rc.Event.Source, Timestamp: rc.Event.Timestamp}
	cp, err := rc.Verify(v, f.origin)
	rep.TreeSize, rep.RootHash = cp.Size, event.Hash(cp.Hash).String()
	if err != nil {
		if ierr := checkpointInputError("the receipt's checkpoint", err, v); ierr != nil {
			return rep, nil, ierr
		}
		rep.Fail(rc.Event.ID, "receipt does not verify: %v", err)
		return rep, ev, nil
	}
	if err := f.witnesses.check(rc.Checkpoint); err != nil {
		rep.Fail(rc.Event.ID, "the receipt's checkpoint is not cosigned by the witnesses: %v", err)
		return rep, ev, nil
	}
	rep.Checked = 1
	if f.remote.url == "" {
		fmt.Fprintf(out, "verify: the receipt proves event %d (%s from %s, hash %s) is in %s at tree size %d\n",
			ev.ID, ev.Kind, ev.Source, ev.Hash, cp.Origin, cp.Size)
		return rep, ev, nil
	}
	c, err := f.remote.client(f.remote.url, remoteTimeout)
	if err != nil {
		return rep, nil, err
	}
	liveSigned, err := c.Checkpoint(ctx)
	if err != nil {
		return rep, nil, err
	}
	live, err := verify.OpenCheckpoint(liveSigned, v, f.origin)
	if err != nil {
		if ierr := checkpointInputError("the server's checkpoint", err, v); ierr != nil {
			return rep, nil, ierr
		}
		rep.Fail(0, "live checkpoint does not verify: %v", err)
		return rep, ev, nil
	}
	var proof []tlog.Hash
	if live.Size > cp.Size {
		if proof, err = c.Consistency(ctx, cp.Size, live.Size); err != nil {
			return rep, nil, err
		}
	}
	if err := verify.CheckConsistency(cp, live, proof, rc.Checkpoint, liveSigned); err != nil {
		rep.Fail(rc.Event.ID, "the live log does not extend the receipt's checkpoint: %v", err)
		return rep, ev, nil
	}
	e, err := c.Get(ctx, rc.Event.ID)
	if err != nil {
		return rep, nil, fmt.Errorf("live event %d: %w", rc.Event.ID, err)
	}
	if e.Hash != rc.Event.Hash {
		rep.Fail(rc.Event.ID, "the live log holds event %d with hash %s, the receipt has %s", e.ID, e.Hash, rc.Event.Hash)
		return rep, ev, nil
	}
	rep.TreeSize, rep.RootHash = live.Size, event.Hash(live.Hash).String()
	fmt.Fprintf(out, "verify: the receipt proves event %d (%s from %s, hash %s) is in %s, which the live log (tree size %d) still holds\n",
		ev.ID, ev.Kind, ev.Source, ev.Hash, cp.Origin, live.Size)
	return rep, ev, nil
}

// checkpointInputError tells a checkpoint that the given key or origin does
// not fit (the caller's mistake) from one that fails verification (a
// broken log): it returns a *verify.InputError for the first, nil for the second.
func checkpointInputError(what string, err error, v note.Verifier) error {
	var unverified *note.UnverifiedNoteError
	switch {
	case errors.As(err, &unverified):
		var by []string
		for _, sig := range unverified.Note.UnverifiedSigs {
			by = append(by, fmt.Sprintf("%s (key hash %08x)", sig.Name, sig.Hash))
		}
		signers := "no signature at all"
		if len(by) > 0 {
			signers = "signatures by " + strings.Join(by, ", ")
		}
		return &verify.InputError{Reason: fmt.Sprintf("%s is not signed by --key %s (key hash %08x): it carries %s; is --key this log's verifier key (GET /checkpoint/key)?",
			what, v.Name(), v.KeyHash(), signers)}
	case errors.Is(err, verify.ErrOrigin):
		return &verify.InputError{Reason: fmt.Sprintf("%s: %v; check --origin", what, err)}
	case strings.Contains(err.Error(), "malformed note"):
		return &verify.InputError{Reason: fmt.Sprintf("%s is not a signed checkpoint (a C2SP signed note, as GET /checkpoint serves it)", what)}
	}
	return nil
}
