package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/prodsig"
	"github.com/audit-stream/audit-stream/provenance"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
)

// provenanceFlags are verify's provenance options.
type provenanceFlags struct {
	check        bool
	keys         repeated
	signed       repeated
	file, sealAt string // offline: the records (GET /provenance) and the seal (GET /provenance/seal)
	// producers indexes the --producer-key verifiers by key id; nil
	// without any (signatures are then counted, not checked).
	producers map[string]note.Verifier
}

func (p *provenanceFlags) flags(fs *flag.FlagSet) {
	fs.BoolVar(&p.check, "provenance", false, "with --url: also check every event's provenance record (who appended it, when it arrived, its producer signature) against the record chain the log sealed with its checkpoint")
	fs.StringVar(&p.file, "provenance-file", "", "with --file and --checkpoint: the provenance records of the export (GET /provenance?until=SIZE, NDJSON), checked offline against --seal")
	fs.StringVar(&p.sealAt, "seal", "", "with --provenance-file: the provenance seal at the checkpoint's size (GET /provenance/seal?size=SIZE)")
	fs.Var(&p.signed, "signed-source", "a source every event of which must carry a producer signature that verifies under a --producer-key (repeatable): an event appended unsigned in its name — by an admin token, or before its key was registered — fails")
	fs.Var(&p.keys, "producer-key", "a producer's verifier key (name+hash+base64) or @FILE, repeatable; implies --provenance: every producer signature must verify under one of these (keep a rotated producer's old key here to check its old events)")
}

// parse reads the producer keys; a mistake in them is a usage error.
func (p *provenanceFlags) parse() error {
	if (p.file == "") != (p.sealAt == "") {
		return fmt.Errorf("%w: --provenance-file and --seal go together", errUsage)
	}
	if len(p.keys) == 0 {
		if len(p.signed) > 0 {
			return fmt.Errorf("%w: --signed-source needs the producers' keys (--producer-key)", errUsage)
		}
		return nil
	}
	p.check = true
	var vs []note.Verifier
	for _, k := range p.keys {
		if file, ok := strings.CutPrefix(k, "@"); ok {
			b, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("%w: --producer-key: %v", errUsage, err)
			}
			k = string(b)
		}
		v, err := prodsig.ParseKey(k)
		if err != nil {
			return fmt.Errorf("%w: --producer-key: %v", errUsage, err)
		}
		vs = append(vs, v)
	}
	p.producers = provenance.Keys(vs)
	return nil
}

// checkProvenance holds the log's provenance records up to the verified
// checkpoint cp to the seal the log signed with it (v, the log's key), and
// to the events: a second pass over the export, in bounded memory. A
// failure is recorded in rep.
func checkProvenance(ctx context.Context, c *client.Client, v note.Verifier, cp verify.Checkpoint, p provenanceFlags, rep *verify.TreeReport) (*provenance.Report, error) {
	if cp.Size == 0 {
		return &provenance.Report{}, nil // the empty log: nothing to seal
	}
	signed, err := c.ProvenanceSeal(ctx, cp.Size)
	var apiErr *client.Error
	if errors.As(err, &apiErr) && apiErr.Status == 404 {
		rep.Fail(0, "the log has no provenance seal for its checkpoint at size %d (the checkpoint predates provenance, or the seal was removed)", cp.Size)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seal, ok := openSeal(signed, v, cp, rep)
	if !ok {
		return nil, nil
	}
	records, err := c.ProvenanceRecords(ctx, 0, cp.Size)
	if err != nil {
		return nil, err
	}
	defer records.Close()
	events, err := c.Export(ctx, client.ExportOptions{Until: cp.Size})
	if err != nil {
		return nil, err
	}
	defer events.Close()
	return runCheck(ctx, records, events, seal, p, rep)
}

// openSeal checks a signed seal against the log's key and the verified
// checkpoint; a failure is recorded in rep.
func openSeal(signed []byte, v note.Verifier, cp verify.Checkpoint, rep *verify.TreeReport) (provenance.Seal, bool) {
	seal, err := provenance.OpenSeal(signed, v)
	if err != nil {
		rep.Fail(0, "provenance seal: %v", err)
		return seal, false
	}
	if seal.Origin != cp.Origin || seal.Size != cp.Size || seal.Root != cp.Hash {
		rep.Fail(0, "the provenance seal (origin %q, size %d) is not for the checkpoint (origin %q, size %d) or names another tree", seal.Origin, seal.Size, cp.Origin, cp.Size)
		return seal, false
	}
	return seal, true
}

func runCheck(ctx context.Context, records, events io.Reader, seal provenance.Seal, p provenanceFlags, rep *verify.TreeReport) (*provenance.Report, error) {
	prep, err := provenance.Check(records, events, seal, provenance.CheckOptions{Keys: p.producers, SignedSources: p.signed})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		rep.Fail(0, "provenance: %v", err)
	}
	return &prep, nil
}

// checkProvenanceFile is checkProvenance offline: the export's events
// (NDJSON), the records and the seal from files.
func checkProvenanceFile(ctx context.Context, exportFile string, v note.Verifier, cp verify.Checkpoint, p provenanceFlags, rep *verify.TreeReport) (*provenance.Report, error) {
	signed, err := os.ReadFile(p.sealAt)
	if err != nil {
		return nil, err
	}
	seal, ok := openSeal(signed, v, cp, rep)
	if !ok {
		return nil, nil
	}
	records, err := os.Open(p.file)
	if err != nil {
		return nil, err
	}
	defer records.Close()
	events, err := os.Open(exportFile)
	if err != nil {
		return nil, err
	}
	defer events.Close()
	br := bufio.NewReader(events)
	if b, _ := br.Peek(1); len(b) == 1 && b[0] == '[' {
		return nil, fmt.Errorf("%w: --provenance-file needs an NDJSON export (audit-stream export), not the original's JSON array", errUsage)
	}
	return runCheck(ctx, records, br, seal, p, rep)
}
