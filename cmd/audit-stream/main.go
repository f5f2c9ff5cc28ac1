// Command audit-stream is the append-only governance event stream: the
// server and the tools around it. It only wires packages together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/audit-stream/audit-stream/internal/httpapi"
)

func main() {
	httpapi.Version = version() // GET / and /openapi.json report it
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// command is one subcommand: it parses its own flags.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"serve", "run the server (the default when no command is given)", runServe},
		{"export", "write events as NDJSON from a server or a data directory", runExport},
		{"import", "load an export or the original's dump into an empty data directory", runImport},
		{"append", "append one event to a server", runAppend},
		{"tail", "follow a server's log live, as NDJSON", runTail},
		{"verify", "verify a live log, an export or a receipt against signed checkpoints", runVerify},
		{"witness", "watch a log's checkpoints and alert on rewritten history; witness serve: cosign logs' checkpoints (C2SP tlog-witness)", runWitness},
		{"keygen", "generate a checkpoint signing key", runKeygen},
		{"key", "key show: print the checkpoint verifier key", runKey},
		{"token", "create, list and revoke API tokens", runToken},
		{"health", "probe a server's /healthz or /readyz, for container health checks", runHealth},
		{"migrate", "bring a store's schema up to date, or print the PostgreSQL schema", runMigrate},
		{"bench", "measure a server: appends, batches, fan-out, reads, against a bare baseline", runBench},
		{"version", "print the version", runVersion},
	}
}

// run is main without the process: tests call it in-process. It returns the
// exit status: 0 success, 1 failure, 2 usage error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version" || args[0] == "-v") {
		return runVersion(ctx, args[1:], stdin, stdout, stderr)
	}
	if len(args) == 0 || (len(args[0]) > 0 && args[0][0] == '-' && args[0] != "-h" && args[0] != "--help" && args[0] != "-help") {
		return runServe(ctx, args, stdin, stdout, stderr)
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" || name == "-help" {
		if len(args) > 1 {
			for _, c := range commands() {
				if c.name == args[1] {
					return c.run(ctx, []string{"--help"}, stdin, stdout, stderr)
				}
			}
		}
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "audit-stream: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `audit-stream: an append-only, hash-chained governance event stream.

Usage:
  audit-stream [serve] [flags]      run the server (default)
  audit-stream <command> [flags]
  audit-stream --version            print the version

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'audit-stream <command> --help' for the flags of a command.
`)
}

func runVersion(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fmt.Fprintln(stdout, "audit-stream", version())
	return 0
}

// parseFlags parses args; ok false means return code now (0 for --help).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

// errUsage marks an error that is the caller's mistake: exit status 2.
var errUsage = errors.New("usage")
