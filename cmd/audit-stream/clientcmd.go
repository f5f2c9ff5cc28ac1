package main

import (
	"flag"
	"strings"

	"github.com/audit-stream/audit-stream/client"
)

// remoteFlags are the flags of every command that talks to a server.
type remoteFlags struct {
	url  string
	conn *connFlags
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.url, "url", envOr("AUDIT_STREAM_URL", "http://localhost:8093"), "server base URL (env AUDIT_STREAM_URL)")
	r.conn = connectionFlags(fs)
}

func (r *remoteFlags) client() (*client.Client, error) {
	// No overall timeout: tail streams for as long as it runs.
	hc, err := r.conn.httpClient(0)
	if err != nil {
		return nil, err
	}
	opts := []client.Option{client.WithHTTPClient(hc)}
	if r.conn.token != "" {
		opts = append(opts, client.WithToken(r.conn.token))
	}
	return client.New(r.url, opts...)
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
