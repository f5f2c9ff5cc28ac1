package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
)

func runAppend(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		remote    clientFlags
		kind      string
		source    string
		payload   string
		timestamp string
		key       string
		signKey   string
	)
	fs := flag.NewFlagSet("append", flag.ContinueOnError)
	fs.SetOutput(stderr)
	remote.register(fs, "http://localhost:8093")
	fs.StringVar(&kind, "kind", "", "event kind (required)")
	fs.StringVar(&source, "source", "", "event source (required)")
	fs.StringVar(&payload, "payload", "", "payload: a JSON object, @FILE to read it from a file, or @- for stdin")
	fs.StringVar(&timestamp, "timestamp", "", "RFC 3339 timestamp to record instead of the server's clock")
	fs.StringVar(&signKey, "sign-key", "", "sign the event with this producer key (a file as audit-stream keygen writes it, or env:NAME), for a token registered with its verifier key; without --timestamp or --idempotency-key the event gets this client's timestamp, so that two equal events sign differently")
	fs.StringVar(&key, "idempotency-key", "", "send this Idempotency-Key: running the command again with the same key and event appends nothing and prints the stored event")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream append --kind K --source S [--payload JSON | --payload @file] [--url URL]

Append one event and print it as stored (one line of JSON, with its id and hash).

Examples:
  audit-stream append --kind request_denied --source gateway --payload '{"path":"/admin"}'
  audit-stream append --kind incident_filed --source oncall --payload @incident.json
  jq -c . event.json | audit-stream append --kind other --source batch --payload @-
  audit-stream append --kind other --source billing --payload @order.json --idempotency-key order-7731
  audit-stream append --kind other --source billing --payload '{"n":1}' --sign-key billing.key

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if kind == "" || source == "" {
		fmt.Fprintln(stderr, "append: --kind and --source are required")
		return 2
	}
	req := client.AppendRequest{Kind: kind, Source: source, Timestamp: timestamp}
	if payload != "" {
		data := []byte(payload)
		if name, ok := strings.CutPrefix(payload, "@"); ok {
			var err error
			if name == "-" {
				data, err = io.ReadAll(stdin)
			} else {
				data, err = os.ReadFile(name)
			}
			if err != nil {
				fmt.Fprintf(stderr, "append: --payload: %v\n", err)
				return 2
			}
			data = event.TrimBOM(data) // as Windows editors save UTF-8
		}
		if !json.Valid(data) {
			// The server would say the same, with an offset; catching it
			// here keeps a typo from needing a server to diagnose.
			fmt.Fprintln(stderr, "append: --payload is not valid JSON")
			return 2
		}
		req.Payload = data
	}
	var opts []client.Option
	if signKey != "" {
		k, err := checkpoint.LoadKey(signKey, "")
		if err != nil {
			fmt.Fprintf(stderr, "append: --sign-key: %v\n", err)
			return 2
		}
		opts = append(opts, client.WithSigner(k.Signer))
	}
	c, err := remote.client(remote.url, 0, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "append: %v\n", err)
		return 2
	}
	a, err := c.AppendWith(ctx, req, client.AppendOptions{IdempotencyKey: key})
	if err != nil {
		fmt.Fprintf(stderr, "append: %v\n", err)
		return 1
	}
	if a.Replayed {
		fmt.Fprintf(stderr, "append: idempotency key %q was used before: the stored event, nothing appended\n", key)
	}
	stdout.Write(append(a.Events[0].AppendJSON(nil), '\n'))
	return 0
}
