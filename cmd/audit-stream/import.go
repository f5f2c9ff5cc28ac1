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
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/backend"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/verify"
)

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

The whole chain is verified: a broken one is refused with the verify report
on stdout, exit status 1, and nothing is written to the store. Otherwise
every event is stored exactly as it is (event_id, timestamp, payload, hash),
the Merkle tree is built and a checkpoint signed with the key serve will use,
so the server continues the same chain. Prints the verify report on stdout
and progress on stderr. Exit status: 0 imported, 1 broken chain, 2 usage or
I/O error.

Into a data directory the log is loaded into a new database file beside the
store's, which replaces it only once complete: a crash or kill before that
leaves the store as it was. No token command may run meanwhile.

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
		return rep, fmt.Errorf("%s is not a regular file", file)
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
	// The empty log's checkpoint is signed before the events go in: the
	// start-up check of serve (and of this import's final signature) then
	// finds a log that grew from a signed empty tree, not events with no
	// checkpoint at all.
	signEmpty := func() error {
		_, err := signCheckpoint(ctx, cp, spec, st, log)
		return err
	}
	if ls, ok := st.(*sqlite.Store); ok {
		rep, err = loadSQLite(ctx, in, ls, progress, signEmpty)
		if err == nil && rep.Valid && rep.Checked > 0 {
			// Commit closed the store: the log is in place, open it.
			var reopened store.Store
			if reopened, err = backend.Open(ctx, spec, backend.Serve, log); err == nil {
				st = reopened
			}
		}
	} else {
		rep, err = loadAppending(ctx, in, st, progress, signEmpty, &written)
	}
	if err != nil || !rep.Valid {
		return rep, err
	}
	if rep.Checked == 0 {
		return rep, fmt.Errorf("%w: %s holds no events", errUsage, file)
	}

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

// loadSQLite reads the file once: verifying, computing the tree and writing
// into a new database file beside the store's, which replaces the store's
// only once the whole chain has passed. A broken chain leaves the store as
// it was; so does a crash, at any point before the final rename.
func loadSQLite(ctx context.Context, in io.Reader, st *sqlite.Store, progress io.Writer, signEmpty func() error) (rep verify.TreeReport, err error) {
	ld, err := st.Loader(ctx)
	if err != nil {
		return rep, err
	}
	defer func() {
		if err != nil || !rep.Valid || rep.Checked == 0 {
			ld.Abort()
		}
	}()
	p := newProgressLine(progress, "import: imported", 0)
	rep, err = ledger.Import(ctx, verify.ExportSource(in), event.ParseStored, ledger.ImportOptions{Write: ld.Append, Progress: p.tick})
	if err != nil || !rep.Valid || rep.Checked == 0 {
		return rep, err
	}
	p.done()
	// In the store being replaced, before Commit copies its meta.
	start := time.Now()
	if err := signEmpty(); err != nil {
		return rep, err
	}
	if err := ld.Commit(ctx); err != nil {
		return rep, err
	}
	fmt.Fprintf(progress, "import: indexed, synced and moved into place in %s\n", time.Since(start).Round(time.Millisecond))
	return rep, nil
}

// loadAppending verifies the file, then reads it again and appends its
// events to a store that cannot be swapped for a new one (a shared
// PostgreSQL database), checking the chain again so that what is written is
// what was verified even if the file changed in between.
func loadAppending(ctx context.Context, in io.ReadSeeker, st store.Store, progress io.Writer, signEmpty func() error, written *bool) (rep verify.TreeReport, err error) {
	p := newProgressLine(progress, "import: verified", 0)
	rep, err = ledger.Import(ctx, verify.ExportSource(in), event.ParseStored, ledger.ImportOptions{Progress: p.tick})
	if err != nil || !rep.Valid || rep.Checked == 0 {
		return rep, err
	}
	p.done()
	if err := signEmpty(); err != nil {
		return rep, err
	}
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return rep, err
	}
	*written = true
	p = newProgressLine(progress, "import: imported", 0)
	rep2, err := ledger.Import(ctx, verify.ExportSource(in), event.ParseStored, ledger.ImportOptions{
		Write: func(ctx context.Context, recs []store.Record) error {
			_, err := st.Append(ctx, func(store.Tx) ([]store.Record, error) { return recs, nil })
			return err
		},
		Progress: p.tick,
	})
	if err != nil {
		return rep, err
	}
	if !rep2.Valid || rep2.Checked != rep.Checked || rep2.RootHash != rep.RootHash {
		return rep, errors.New("the file changed while it was imported")
	}
	p.done()
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
	checkpointer, err := openCheckpoints(ctx, cp, spec, st, led, log)
	if err != nil {
		return verify.Checkpoint{}, err
	}
	return checkpointer.Latest(), nil
}
