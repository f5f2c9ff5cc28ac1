package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/client"
)

// clientFlags is the one set of flags of every command that talks to a
// server: where (--url), who (--token) and how (TLS like the server's
// --tls-cert and --tls-client-ca: a CA to trust, a client certificate for
// mTLS). Each defaults to its environment variable.
type clientFlags struct {
	url     string
	token   string
	cacert  string
	cert    string
	keyFile string
}

const envURL = "AUDIT_STREAM_URL"

// register adds the flags to fs. def is --url's default when
// AUDIT_STREAM_URL is unset; "" for the commands where --url chooses what
// to work on (verify, export, witness), which take AUDIT_STREAM_URL only
// when nothing else is chosen (urlOrEnv).
func (c *clientFlags) register(fs *flag.FlagSet, def string) {
	if def != "" {
		fs.StringVar(&c.url, "url", envOr(envURL, def), "server base URL (env "+envURL+")")
	} else {
		fs.StringVar(&c.url, "url", "", "server base URL (env "+envURL+", when nothing else is chosen)")
	}
	registerToken(fs, &c.token)
	fs.StringVar(&c.cacert, "cacert", envOr("AUDIT_STREAM_CACERT", ""), "trust the server certificates signed by these PEM CAs instead of the system roots (env AUDIT_STREAM_CACERT)")
	fs.StringVar(&c.cert, "cert", envOr("AUDIT_STREAM_CERT", ""), "PEM client certificate for mTLS, with --key-file (env AUDIT_STREAM_CERT)")
	fs.StringVar(&c.keyFile, "key-file", envOr("AUDIT_STREAM_KEY_FILE", ""), "PEM private key of --cert (env AUDIT_STREAM_KEY_FILE)")
}

// registerToken adds --token alone, for bench, which drives only servers
// on this machine and takes no URL from the environment.
func registerToken(fs *flag.FlagSet, token *string) {
	fs.StringVar(token, "token", envOr("AUDIT_STREAM_TOKEN", ""), "bearer token sent to the server (env AUDIT_STREAM_TOKEN, or AUDIT_STREAM_TOKEN_FILE naming a file that holds it)")
}

// urlOrEnv is --url, else AUDIT_STREAM_URL, for the commands whose --url
// has no default.
func (c *clientFlags) urlOrEnv() string {
	if c.url != "" {
		return c.url
	}
	return os.Getenv(envURL)
}

// resolveToken fills the token from AUDIT_STREAM_TOKEN_FILE when neither
// the flag nor AUDIT_STREAM_TOKEN gave one.
func resolveToken(token *string) error {
	if *token != "" {
		return nil
	}
	if p := os.Getenv("AUDIT_STREAM_TOKEN_FILE"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("AUDIT_STREAM_TOKEN_FILE: %w", err)
		}
		*token = strings.TrimRight(string(b), "\r\n")
	}
	return nil
}

// client is the client for url with the token and TLS settings. timeout
// bounds each request but tails and exports; 0 leaves them to ctx.
func (c *clientFlags) client(url string, timeout time.Duration, more ...client.Option) (*client.Client, error) {
	if err := resolveToken(&c.token); err != nil {
		return nil, err
	}
	opts := append([]client.Option{client.WithTimeout(timeout)}, more...)
	if c.token != "" {
		opts = append(opts, client.WithToken(c.token))
	}
	if c.cacert != "" || c.cert != "" || c.keyFile != "" {
		if (c.cert == "") != (c.keyFile == "") {
			return nil, errors.New("--cert and --key-file go together")
		}
		cfg, err := client.TLSConfig(c.cacert, c.cert, c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert, --cert, --key-file: %w", err)
		}
		opts = append(opts, client.WithTLSConfig(cfg))
	}
	return client.New(url, opts...)
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
