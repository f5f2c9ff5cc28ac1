package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/audit-stream/audit-stream/client"
)

func runTail(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var (
		remote  clientFlags
		after   string
		kinds   multiFlag
		sources multiFlag
	)
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr)
	remote.register(fs, "http://localhost:8093")
	fs.StringVar(&after, "after", "", "start after this event id (0: the whole history); default: only new events")
	fs.Var(&kinds, "kind", "only events of this kind (repeatable: any of them)")
	fs.Var(&sources, "source", "only events from this source (repeatable: any of them)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream tail [--after N] [--kind K]... [--source S]... [--url URL]

Follow the log live and print each event as one line of JSON (NDJSON), in id
order. When the connection drops it reconnects by itself, resuming after the
last event printed: nothing is lost or printed twice. Reconnects are reported
on stderr. Stop it with Ctrl-C.

Examples:
  audit-stream tail
  audit-stream tail --after 0 | jq -c 'select(.source == "gateway")'
  audit-stream tail --kind request_denied --kind tool_invocation_denied --url https://audit.internal

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	opt := client.TailOptions{
		Kinds:   kinds,
		Sources: sources,
		OnRetry: func(err error, wait time.Duration) {
			fmt.Fprintf(stderr, "tail: %v; reconnecting in %v\n", err, wait.Round(time.Millisecond))
		},
	}
	if after != "" {
		n, err := strconv.ParseInt(after, 10, 64)
		if err != nil || n < 0 {
			fmt.Fprintf(stderr, "tail: --after must be a non-negative event id, got %q\n", after)
			return 2
		}
		opt.After = &n
	}
	c, err := remote.client(remote.url, 0)
	if err != nil {
		fmt.Fprintf(stderr, "tail: %v\n", err)
		return 2
	}
	var line []byte
	for ev, err := range c.Tail(ctx, opt) {
		if err != nil {
			if ctx.Err() != nil {
				return 0 // interrupted: the normal way to stop
			}
			fmt.Fprintf(stderr, "tail: %v\n", err)
			return 1
		}
		// One write per event, unbuffered: a pipe reader sees each event
		// as it happens.
		line = append(ev.AppendJSON(line[:0]), '\n')
		if _, err := stdout.Write(line); err != nil {
			fmt.Fprintf(stderr, "tail: %v\n", err)
			return 1
		}
	}
	return 0
}
