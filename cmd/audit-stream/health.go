package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/audit-stream/audit-stream/client"
)

// runHealth probes a server, for container health checks: images without
// a shell or curl run the binary itself.
func runHealth(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var remote clientFlags
	remote.register(fs, "http://127.0.0.1:8093") // in a container: the server beside it, IPv4
	ready := fs.Bool("ready", false, "probe GET /readyz (store answers, data directory writable) instead of GET /healthz (the process serves)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream health [--ready] [--url URL]

Exit 0 when the server answers 200 on /healthz (or /readyz with --ready),
1 otherwise, printing the server's detail. For container health checks:
  HEALTHCHECK CMD ["audit-stream", "health", "--ready"]

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	c, err := remote.client(remote.url, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "health: %v\n", err)
		return 2
	}
	probe, path := c.Health, "/healthz"
	if *ready {
		probe, path = c.Ready, "/readyz"
	}
	status, err := probe(ctx)
	if err != nil {
		var e *client.Error
		if errors.As(err, &e) {
			fmt.Fprintf(stderr, "health: %s %d %s: %s\n", path, e.Status, e.Title, e.Detail)
		} else {
			fmt.Fprintf(stderr, "health: %s: %v\n", path, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "{\"status\":%q}\n", status)
	return 0
}
