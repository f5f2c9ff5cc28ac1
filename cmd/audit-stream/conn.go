package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"
)

// connFlags are the credentials of every command that talks to a server:
// a bearer token, and TLS like the server's (--tls-cert, --tls-client-ca):
// a CA to trust and a client certificate for mTLS.
type connFlags struct {
	token   string
	cacert  string
	cert    string
	keyFile string
}

// connectionFlags registers --token, --cacert, --cert and --key-file on fs.
func connectionFlags(fs *flag.FlagSet) *connFlags {
	c := &connFlags{}
	fs.StringVar(&c.token, "token", envOr("AUDIT_STREAM_TOKEN", ""), "bearer token sent to the server (env AUDIT_STREAM_TOKEN, or AUDIT_STREAM_TOKEN_FILE naming a file that holds it)")
	fs.StringVar(&c.cacert, "cacert", envOr("AUDIT_STREAM_CACERT", ""), "trust the server certificates signed by these PEM CAs instead of the system roots (env AUDIT_STREAM_CACERT)")
	fs.StringVar(&c.cert, "cert", envOr("AUDIT_STREAM_CERT", ""), "PEM client certificate for mTLS, with --key-file (env AUDIT_STREAM_CERT)")
	fs.StringVar(&c.keyFile, "key-file", envOr("AUDIT_STREAM_KEY_FILE", ""), "PEM private key of --cert (env AUDIT_STREAM_KEY_FILE)")
	return c
}

// resolve fills the token from AUDIT_STREAM_TOKEN_FILE when neither the
// flag nor AUDIT_STREAM_TOKEN gave one.
func (c *connFlags) resolve() error {
	if c.token != "" {
		return nil
	}
	if p := os.Getenv("AUDIT_STREAM_TOKEN_FILE"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("AUDIT_STREAM_TOKEN_FILE: %w", err)
		}
		c.token = string(trimNewline(b))
	}
	return nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// tlsConfig is the client TLS configuration, or nil for Go's defaults.
func (c *connFlags) tlsConfig() (*tls.Config, error) {
	if c.cacert == "" && c.cert == "" && c.keyFile == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.cacert != "" {
		pem, err := os.ReadFile(c.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no PEM certificate in it", c.cacert)
		}
		cfg.RootCAs = pool
	}
	if (c.cert == "") != (c.keyFile == "") {
		return nil, errors.New("--cert and --key-file go together")
	}
	if c.cert != "" {
		pair, err := tls.LoadX509KeyPair(c.cert, c.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key-file: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// httpClient is an http.Client with the TLS settings; timeout 0 for
// clients that tail.
func (c *connFlags) httpClient(timeout time.Duration) (*http.Client, error) {
	if err := c.resolve(); err != nil {
		return nil, err
	}
	cfg, err := c.tlsConfig()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: timeout}
	if cfg != nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg
		hc.Transport = t
	}
	return hc, nil
}
