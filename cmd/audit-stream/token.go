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
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/prodsig"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/backend"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

const tokenUsage = `Usage:
  audit-stream token create --role ROLE [--role ROLE2] [--source S]... [--name N] [--expires 90d] [--signing-key VKEY|FILE]
  audit-stream token list [--json]
  audit-stream token revoke ID

Manage API tokens in the store (--store or --data). It works while the
servers run: every instance checks tokens on every request, so a new token
or a revocation takes effect on the next request.

Roles: producer (append, only as the token's --source values), reader (the
read endpoints), admin (everything, including /admin/tokens).

--signing-key registers a producer's Ed25519 verifier key (name+hash+base64,
as 'audit-stream keygen' prints it, or a file holding it): every event the
token appends must then carry its signature (Audit-Signature), which the
server checks, stores in the event's provenance and serves to verifiers.
Give the verifier key only; the private key stays with the producer.

'create' prints the secret alone on the first line of standard output, then
the token's details. The secret is shown only this once: the database keeps
only its SHA-256 digest.

The data directory used is printed on standard error. A --data that holds no
log yet is refused (exit 2), so that a wrong path or working directory never
creates a stray database the server does not read; pass --init to create the
log there on purpose, before the server's first start.

Examples:
  audit-stream token create --role admin --name ops --data /var/lib/audit-stream
  audit-stream token create --role admin --data /var/lib/audit-stream --init   # before the first start
  TOKEN=$(audit-stream token create --role producer --source billing --expires 90d | head -1)
  audit-stream token list
  audit-stream token revoke tok_3f9a1c2b7d4e

Flags:
`

func runToken(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sc storeConfig
	sc.flags(fs)
	var roles, sources multiFlag
	fs.Var(&roles, "role", "create: a role to grant, repeatable: producer, reader, admin")
	fs.Var(&sources, "source", "create: a source the token may append as, repeatable")
	name := fs.String("name", "", "create: a name to recognise the token by")
	expires := fs.String("expires", "", "create: lifetime, like 90d, 36h (default: never)")
	signingKey := fs.String("signing-key", "", "create: the producer's verifier key (name+hash+base64) or a file holding it; its appends must be signed")
	asJSON := fs.Bool("json", false, "list: print JSON")
	initData := fs.Bool("init", false, "create the data directory and its database when --data holds no log yet (before the server's first start)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), tokenUsage)
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		fs.Usage()
		return 2
	}
	sub, rest := args[0], args[1:]
	if sub == "-h" || sub == "--help" || sub == "-help" || sub == "help" {
		fs.SetOutput(stdout)
		fs.Usage()
		return 0
	}
	// Flags may come before or after the positional id.
	var pos []string
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	// open opens the store, or says why not and returns the exit status:
	// 2 when the data directory holds no log and --init was not given
	// (most likely a wrong --data or working directory), 1 otherwise. A
	// PostgreSQL store is a log once its schema exists, which opening
	// creates.
	open := func() (store.Store, int) {
		spec, err := sc.spec()
		if err != nil {
			fmt.Fprintf(stderr, "token: %v\n", err)
			return nil, 2
		}
		if spec.Dir != "" {
			if abs, err := filepath.Abs(spec.Dir); err == nil {
				fmt.Fprintf(stderr, "data directory: %s\n", abs)
			}
			if !*initData && !holdsLog(spec.Dir) {
				fmt.Fprintf(stderr, "token: %s holds no audit-stream log (no %s): check --data (env AUDIT_STREAM_DATA) or --store, "+
					"or pass --init to create one there before the server's first start\n", spec.Dir, sqlite.FileName)
				return nil, 2
			}
		}
		st, err := backend.Open(ctx, spec, backend.Admin, nil)
		if err != nil {
			fmt.Fprintf(stderr, "token: %v\n", err)
			return nil, 1
		}
		return st, 0
	}
	switch sub {
	case "create":
		if len(pos) > 0 {
			fmt.Fprintf(stderr, "token create: unexpected argument %q\n", pos[0])
			return 2
		}
		ttl, err := auth.ParseTTL(*expires)
		if err != nil {
			fmt.Fprintf(stderr, "token create: %v\n", err)
			return 2
		}
		vkey, err := readProducerKey(*signingKey)
		if err != nil {
			fmt.Fprintf(stderr, "token create: --signing-key: %v\n", err)
			return 2
		}
		spec := auth.Spec{Name: *name, Roles: roles, Sources: sources, TTL: ttl, SigningKey: vkey}
		if err := spec.Check(); err != nil {
			fmt.Fprintf(stderr, "token create: %v\n", err)
			return 2
		}
		st, code := open()
		if st == nil {
			return code
		}
		defer st.Close()
		had, err := st.HasTokens(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "token create: %v\n", err)
			return 1
		}
		secret, t, err := auth.New(spec, time.Now())
		if err == nil {
			err = st.CreateToken(ctx, t)
		}
		if err != nil {
			fmt.Fprintf(stderr, "token create: %v\n", err)
			return 1
		}
		if !had {
			// Leaving open mode locks out every client without a token,
			// from the server's next request on: say so loudly.
			slog.New(slog.NewTextHandler(stderr, nil)).Warn(
				"first API token created: auth mode is now on; every endpoint except /healthz, / and the verification material needs a token",
				"auth", "on", "token_id", t.ID, "roles", strings.Join(t.Roles, ","))
		}
		fmt.Fprintln(stdout, secret)
		printToken(stdout, t)
		fmt.Fprintln(stdout, "The secret above is shown only once; store it now.")
		return 0
	case "list":
		if len(pos) > 0 {
			fmt.Fprintf(stderr, "token list: unexpected argument %q\n", pos[0])
			return 2
		}
		st, code := open()
		if st == nil {
			return code
		}
		defer st.Close()
		ts, err := st.ListTokens(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "token list: %v\n", err)
			return 1
		}
		if *asJSON {
			out := make([]httpapi.TokenView, len(ts))
			for i, t := range ts {
				out[i] = httpapi.ViewToken(t)
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(map[string]any{"tokens": out})
			return 0
		}
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLES\tSOURCES\tCREATED\tEXPIRES\tSTATUS")
		now := time.Now()
		for _, t := range ts {
			status := t.Usable(now)
			if status == "" {
				status = "active"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, dash(t.Name), strings.Join(t.Roles, ","),
				dash(strings.Join(t.Sources, ",")), t.Created.Format(time.RFC3339), timeOrNever(t.Expires), status)
		}
		tw.Flush()
		return 0
	case "revoke":
		if len(pos) != 1 {
			fmt.Fprintln(stderr, "token revoke: give exactly one token id (see 'audit-stream token list')")
			return 2
		}
		st, code := open()
		if st == nil {
			return code
		}
		defer st.Close()
		if err := st.RevokeToken(ctx, pos[0], time.Now()); errors.Is(err, store.ErrNotFound) {
			fmt.Fprintf(stderr, "token revoke: no token with id %q\n", pos[0])
			return 1
		} else if err != nil {
			fmt.Fprintf(stderr, "token revoke: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "revoked %s\n", pos[0])
		return 0
	}
	fmt.Fprintf(stderr, "token: unknown subcommand %q (create, list, revoke)\n", sub)
	return 2
}

// holdsLog reports whether dir holds an audit-stream database.
func holdsLog(dir string) bool {
	fi, err := os.Stat(filepath.Join(dir, sqlite.FileName))
	return err == nil && fi.Mode().IsRegular()
}

func printToken(w io.Writer, t store.Token) {
	fmt.Fprintf(w, "id:       %s\n", t.ID)
	if t.Name != "" {
		fmt.Fprintf(w, "name:     %s\n", t.Name)
	}
	fmt.Fprintf(w, "roles:    %s\n", strings.Join(t.Roles, ", "))
	if len(t.Sources) > 0 {
		fmt.Fprintf(w, "sources:  %s\n", strings.Join(t.Sources, ", "))
	}
	fmt.Fprintf(w, "expires:  %s\n", timeOrNever(t.Expires))
	if t.SigningKey != "" {
		fmt.Fprintf(w, "signing key: %s\n", t.SigningKey)
	}
}

// readProducerKey reads a producer verifier key given as itself or as a
// file holding it. A private key is refused: the server needs only the
// verifier key, and a producer's private key must never leave it.
func readProducerKey(arg string) (string, error) {
	if arg == "" {
		return "", nil
	}
	text := arg
	if _, err := prodsig.ParseKey(arg); err != nil {
		b, ferr := os.ReadFile(arg)
		if ferr != nil {
			return "", fmt.Errorf("neither a verifier key (name+hash+base64) nor a readable file: %v", ferr)
		}
		text = strings.TrimSpace(string(b))
	}
	if strings.HasPrefix(text, "PRIVATE+KEY+") || strings.Contains(text, "PRIVATE KEY") {
		return "", errors.New("that is a private key: give the verifier key ('audit-stream keygen' prints it), which is all the server needs")
	}
	if _, err := prodsig.ParseKey(text); err != nil {
		return "", err
	}
	return text, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}
