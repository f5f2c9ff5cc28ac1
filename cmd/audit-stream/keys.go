package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
)

func runKeygen(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "key name: the log's checkpoint origin, e.g. example.com/audit (required)")
	out := fs.String("out", "", "file to write the private signing key to, mode 0600; never overwritten (required)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream keygen --name ORIGIN --out FILE

Generate an Ed25519 checkpoint signing key (C2SP signed-note format). The
private key goes to FILE (mode 0600); the verifier key, which clients and
witnesses pin, is printed on stdout.

Examples:
  audit-stream keygen --name example.com/audit --out /etc/audit-stream/signing.key
  audit-stream serve --origin example.com/audit --signing-key /etc/audit-stream/signing.key

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *name == "" || *out == "" {
		fmt.Fprintln(stderr, "keygen: --name and --out are required")
		return 2
	}
	skey, k, err := checkpoint.GenerateKey(*name)
	if err != nil {
		fmt.Fprintf(stderr, "keygen: %v\n", err)
		return 2
	}
	if err := checkpoint.WriteKeyFile(*out, skey); err != nil {
		fmt.Fprintf(stderr, "keygen: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, k.VerifierKey)
	return 0
}

func runKey(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "show" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(stdout, keyShowUsage)
			return 0
		}
		fmt.Fprint(stderr, keyShowUsage)
		return 2
	}
	fs := flag.NewFlagSet("key show", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", envOr("AUDIT_STREAM_DATA", "./audit-stream-data"), "data directory holding the generated key (env AUDIT_STREAM_DATA)")
	file := fs.String("signing-key", envOr("AUDIT_STREAM_SIGNING_KEY", ""), "signing key file (or env:NAME) instead of the data directory's (env AUDIT_STREAM_SIGNING_KEY)")
	origin := fs.String("origin", envOr("AUDIT_STREAM_ORIGIN", ""), "the log's origin, which names a PKCS#8 key (env AUDIT_STREAM_ORIGIN)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), keyShowUsage+"\nFlags:\n"); fs.PrintDefaults() }
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	path := *file
	if path == "" {
		path = filepath.Join(*data, checkpoint.KeyFile)
	}
	k, err := checkpoint.LoadKey(path, *origin)
	if err != nil {
		fmt.Fprintf(stderr, "key show: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, k.VerifierKey)
	return 0
}

const keyShowUsage = `Usage: audit-stream key show [--data DIR | --signing-key FILE]

Print the checkpoint verifier key (name+hash+base64) of the server's signing
key: the value to pass as --key to verify and witness.

Examples:
  audit-stream key show --data /var/lib/audit-stream
  audit-stream key show --signing-key /etc/audit-stream/signing.key
`

// verifierKey resolves a --key value: the key itself or @FILE.
func verifierKey(val string) (note.Verifier, error) {
	if rest, ok := strings.CutPrefix(val, "@"); ok {
		b, err := os.ReadFile(rest)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		val = string(b)
	}
	return verify.ParseVerifierKey(val)
}
