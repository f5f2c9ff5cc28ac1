package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/backend"
	"github.com/audit-stream/audit-stream/verify"
)

// importBatch is the number of events written in one transaction: large
// enough that the per-transaction cost (an fsync) vanishes, small enough to
// keep memory and the WAL small.
const importBatch = 16384

func runImport(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var cp checkpointConfig
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sc storeConfig
	sc.flags(fs) // the store must hold no events
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	cp.flags(fs)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream import FILE [--store STORE | --data DIR] [--origin NAME] [--signing-key FILE]

Load an existing log into an empty store, offline (no server may run on the
store). The store is a data directory or a PostgreSQL URL: an export of a
SQLite log imported into PostgreSQL (or back) verifies to the same root. FILE is an NDJSON export (audit-stream export, GET /export) or the
original service's JSON array dump (GET /events?limit=100000); a leading UTF-8
byte-order mark is ignored.

The whole chain is verified first: a broken one is refused with the verify
report on stdout, exit status 1, and nothing is written. Otherwise every
event is stored exactly as it is (event_id, timestamp, payload, hash), the
Merkle tree is built and a checkpoint signed with the key serve will use, so
the server continues the same chain. Prints the verify report on stdout and
progress on stderr. Exit status: 0 imported, 1 broken chain, 2 usage or I/O
error.

Examples:
  audit-stream import events.ndjson --data /var/lib/audit-stream
  audit-stream import original-dump.json --data ./audit-stream-data --origin example.com/audit
  audit-stream import events.ndjson --store postgres://audit@db/audit --signing-key signing.key

Flags:
`)
		fs.PrintDefaults()
	}
	file, code, ok := parseWithArg(fs, args)
	if !ok {
		return code
	}
	var progress io.Writer = stderr
	if *quiet {
		progress = io.Discard
	}
	log := slog.New(slog.NewTextHandler(progress, nil))
	spec, err := sc.spec()
	if err != nil {
		fmt.Fprintf(stderr, "import: %v\n", err)
		return 2
	}
	rep, err := importFile(ctx, file, spec, cp, progress, log)
	if err != nil {
		fmt.Fprintf(stderr, "import: %v\n", err)
		return 2
	}
	json.NewEncoder(stdout).Encode(rep)
	if !rep.Valid {
		fmt.Fprintln(stderr, "import: the chain is broken; nothing was written")
		return 1
	}
	return 0
}

// parseWithArg parses flags and exactly one positional argument, which may
// come before, between or after the flags.
func parseWithArg(fs *flag.FlagSet, args []string) (arg string, code int, ok bool) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", 0, false
			}
			return "", 2, false
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(pos) != 1 {
		fmt.Fprintf(fs.Output(), "%s: want exactly one FILE argument, got %d (see --help)\n", fs.Name(), len(pos))
		return "", 2, false
	}
	return pos[0], 0, true
}

// importFile verifies file, then loads it into the store in data. A broken
// chain is a report with Valid false and nothing written.
func importFile(ctx context.Context, file string, spec backend.Spec, cp checkpointConfig, progress io.Writer, log *slog.Logger) (rep verify.TreeReport, err error) {
	in, err := os.Open(file)
	if err != nil {
		return rep, err
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return rep, err
	} else if !fi.Mode().IsRegular() {
		return rep, fmt.Errorf("%s is not a regular file: import reads it twice (verify, then load)", file)
	}
	created := false
	if spec.Dir != "" {
		_, statErr := os.Stat(spec.Dir)
		created = errors.Is(statErr, os.ErrNotExist)
	}
	st, err := backend.Open(ctx, spec, backend.Serve, log)
	if err != nil {
		return rep, err
	}
	written := false
	defer func() {
		st.Close()
		// Leave no trace of a refused or failed import in a directory
		// that did not exist before it.
		if created && (err != nil || !rep.Valid) {
			os.RemoveAll(spec.Dir)
		} else if err != nil && written {
			err = fmt.Errorf("%w\nthe store in %s holds part of the import: remove it and import again", err, spec)
		}
	}()
	head, err := st.Head(ctx)
	if err != nil {
		return rep, err
	}
	if head.ID != 0 {
		return rep, fmt.Errorf("%w: %s already holds %d events; import needs an empty store", errUsage, spec, head.ID)
	}

	// Pass 1: verify, writing nothing.
	p := newProgressLine(progress, "import: verified", 0)
	rep, err = verify.CheckTreeRaw(ctx, verify.ExportSource(in), event.ParseStored, nil, verify.StreamOptions{Visit: func(e *event.Event) error {
		p.tick(e.ID)
		return nil
	}})
	if err != nil || !rep.Valid {
		return rep, err
	}
	p.done()
	if rep.Checked == 0 {
		return rep, fmt.Errorf("%w: %s holds no events", errUsage, file)
	}

	// The empty log's checkpoint first: the start-up check of serve
	// (and of this import's final signature) then finds a log that grew
	// from a signed empty tree, not events with no checkpoint at all.
	if _, err := signCheckpoint(ctx, cp, spec, st, log); err != nil {
		return rep, err
	}

	// Pass 2: load, verifying again so that what is written is what was
	// verified even if the file changed in between.
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return rep, err
	}
	written = true
	p = newProgressLine(progress, "import: imported", 0)
	im := ledger.NewImporter(st)
	full := make(chan []event.Event, 1)
	free := make(chan []event.Event, 2)
	free <- make([]event.Event, 0, importBatch)
	free <- make([]event.Event, 0, importBatch)
	loadErr := make(chan error, 1)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var err error
		for batch := range full {
			if err == nil {
				if err = im.Append(lctx, batch); err != nil {
					cancel()
				} else {
					p.tick(batch[len(batch)-1].ID)
				}
			}
			clear(batch)
			free <- batch[:0]
		}
		loadErr <- err
	}()
	batch := <-free
	var t2 verify.Tree
	rep2, err := verify.StreamTreeRaw(lctx, verify.ExportSource(in), event.ParseStored, verify.StreamOptions{Visit: func(e *event.Event) error {
		batch = append(batch, *e)
		if len(batch) == importBatch {
			full <- batch
			select {
			case batch = <-free:
			case <-lctx.Done():
				return lctx.Err()
			}
		}
		return nil
	}}, &t2)
	if err == nil && len(batch) > 0 {
		full <- batch
	}
	close(full)
	if lerr := <-loadErr; lerr != nil {
		return rep, lerr
	}
	if err != nil {
		return rep, err
	}
	if !rep2.Valid || rep2.Checked != rep.Checked || rep2.RootHash != rep.RootHash {
		return rep, fmt.Errorf("%s changed while it was imported", file)
	}
	p.done()

	// Sign over the imported events as serve would, with the key it will use.
	got, err := signCheckpoint(ctx, cp, spec, st, log)
	if err != nil {
		return rep, err
	}
	if got.Size != rep.Checked || event.Hash(got.Hash).String() != rep.RootHash {
		return rep, fmt.Errorf("the stored tree (size %d, root %x) does not match the verified events (size %d, root %s)", got.Size, got.Hash[:], rep.Checked, rep.RootHash)
	}
	return rep, nil
}

// signCheckpoint signs a checkpoint for the store's tree as it stands, the
// way serve does at start-up, and returns it.
func signCheckpoint(ctx context.Context, cp checkpointConfig, spec backend.Spec, st store.Store, log *slog.Logger) (verify.Checkpoint, error) {
	led, err := ledger.Open(ctx, st, ledger.Options{Logger: log})
	if err != nil {
		return verify.Checkpoint{}, err
	}
	defer led.Close(context.Background())
	cps, err := openCheckpoints(ctx, cp, spec, st, led, log)
	if err != nil {
		return verify.Checkpoint{}, err
	}
	return cps.Latest(), nil
}
