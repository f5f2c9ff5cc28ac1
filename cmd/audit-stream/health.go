package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// runHealth probes a server, for container health checks: images without
// a shell or curl run the binary itself.
func runHealth(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", envOr("AUDIT_STREAM_URL", "http://127.0.0.1:8093"), "server base URL (env AUDIT_STREAM_URL)")
	ready := fs.Bool("ready", false, "probe GET /readyz (store answers, data directory writable) instead of GET /healthz (the process serves)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	conn := connectionFlags(fs)
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
	hc, err := conn.httpClient(*timeout)
	if err != nil {
		fmt.Fprintf(stderr, "health: %v\n", err)
		return 2
	}
	path := "/healthz"
	if *ready {
		path = "/readyz"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*url, "/")+path, nil)
	if err != nil {
		fmt.Fprintf(stderr, "health: %v\n", err)
		return 2
	}
	res, err := hc.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "health: %v\n", err)
		return 1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "health: %s %s: %s\n", path, res.Status, strings.TrimSpace(string(body)))
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", strings.TrimSpace(string(body)))
	return 0
}
