package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/backend"
)

func runExport(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	after := fs.Int64("after", 0, "export events after this id")
	until := fs.Int64("until", 0, "export events up to and including this id (default: the head)")
	var remote clientFlags
	remote.register(fs, "") // export from a running server at this URL
	var sc storeConfig
	sc.flags(fs)
	sc.readFlag(fs)
	out := fs.String("out", "", "write to this file instead of stdout")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: audit-stream export [--after N] [--until M] [--url URL | --store STORE [--store-read URL]] [--out FILE]

Write events (N, M] as NDJSON, one event a line in wire form, from a running
server (GET /export), from the data directory of a stopped one, or from a
PostgreSQL store (while its servers run; --store-read reads the events from
a read replica, up to the primary's head as export starts). The output
is what audit-stream verify --file checks. Without --url, --store or --data
(nor their environment variables), AUDIT_STREAM_URL names the server.

Examples:
  audit-stream export --url http://127.0.0.1:8093 --out events.ndjson
  audit-stream export --url http://127.0.0.1:8093 --after 1000 --until 2000
  audit-stream export --data /var/lib/audit-stream > events.ndjson
  audit-stream export --store postgres://audit@db/audit --out events.ndjson

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *after < 0 || *until < 0 || (*until > 0 && *until < *after) {
		fmt.Fprintln(stderr, "export: --after and --until must be event ids with until >= after")
		return 2
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintf(stderr, "export: %v\n", err)
			return 2
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var err error
	if url := exportURL(fs, &remote); url != "" {
		err = exportRemote(ctx, url, &remote, *after, *until, bw)
	} else {
		err = exportLocal(ctx, sc, *after, *until, bw)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "export: %v\n", err)
		return 2
	}
	return 0
}

// exportURL is the server to export from: --url, else AUDIT_STREAM_URL
// unless a store is named on the command line or in the environment.
func exportURL(fs *flag.FlagSet, remote *clientFlags) string {
	if remote.url != "" {
		return remote.url
	}
	local := os.Getenv("AUDIT_STREAM_STORE") != "" || os.Getenv("AUDIT_STREAM_DATA") != ""
	fs.Visit(func(f *flag.Flag) { local = local || f.Name == "store" || f.Name == "data" })
	if local {
		return ""
	}
	return remote.urlOrEnv()
}

func exportRemote(ctx context.Context, url string, remote *clientFlags, after, until int64, w io.Writer) error {
	c, err := remote.client(url, 0)
	if err != nil {
		return err
	}
	body, err := c.Export(ctx, client.ExportOptions{After: after, Until: until})
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = io.Copy(w, body)
	return err
}

func exportLocal(ctx context.Context, sc storeConfig, after, until int64, w io.Writer) error {
	spec, err := sc.spec()
	if err != nil {
		return err
	}
	if spec.Dir != "" {
		if _, err := os.Stat(spec.Dir); err != nil {
			return err
		}
	}
	st, err := backend.Open(ctx, spec, backend.Serve, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if until == 0 {
		// The head as the primary has it: a read replica (--store-read)
		// then waits until it holds every event up to it.
		head, err := st.Head(ctx)
		if err != nil || head.ID <= after {
			return err
		}
		until = head.ID
	}
	var line []byte
	return backend.Reads(st).Scan(ctx, store.Filter{After: after, Until: until}, 0, func(e *event.Event) error {
		line = append(e.AppendJSON(line[:0]), '\n')
		_, err := w.Write(line)
		return err
	})
}
