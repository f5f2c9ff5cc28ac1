package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/audit-stream/audit-stream/internal/store/backend"
	"github.com/audit-stream/audit-stream/internal/store/postgres"
)

const migrateUsage = `Usage: audit-stream migrate [--store STORE] [--print]

Bring the store's schema up to date and exit. Servers migrate on start too
(instances starting together take turns); this command lets an operator do
it beforehand. --print writes the PostgreSQL schema as one SQL script, for
DBAs who apply schema changes themselves, and touches nothing.

Examples:
  audit-stream migrate --print > audit-stream.sql
  audit-stream migrate --store postgres://audit@db/audit

Flags:
`

func runMigrate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sc storeConfig
	sc.flags(fs)
	print := fs.Bool("print", false, "print the PostgreSQL schema as SQL instead of applying anything")
	fs.Usage = func() { fmt.Fprint(fs.Output(), migrateUsage); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "migrate: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *print {
		fmt.Fprint(stdout, postgres.MigrationSQL())
		return 0
	}
	st, spec, err := sc.open(ctx, backend.Admin, nil)
	if err != nil {
		fmt.Fprintf(stderr, "migrate: %v\n", err)
		return 1
	}
	st.Close()
	fmt.Fprintf(stdout, "%s: schema up to date\n", spec)
	return 0
}
