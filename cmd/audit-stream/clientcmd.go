package main

import (
	"flag"
	"os"
	"strings"

	"github.com/audit-stream/audit-stream/client"
)

// remoteFlags are the flags of every command that talks to a server.
type remoteFlags struct {
	url   string
	token string
}

func (r *remoteFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&r.url, "url", envOr("AUDIT_STREAM_URL", "http://localhost:8093"), "server base URL (env AUDIT_STREAM_URL)")
	fs.StringVar(&r.token, "token", os.Getenv("AUDIT_STREAM_TOKEN"), "bearer token sent to the server (env AUDIT_STREAM_TOKEN)")
}

func (r *remoteFlags) client() (*client.Client, error) {
	var opts []client.Option
	if r.token != "" {
		opts = append(opts, client.WithToken(r.token))
	}
	return client.New(r.url, opts...)
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
