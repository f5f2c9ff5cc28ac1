package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"time"

	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/httpapi"
)

// securityConfig is the serve flags for auth, TLS, rate limits,
// idempotency and batches.
type securityConfig struct {
	authMode          string
	tokensFile        string
	tlsCert, tlsKey   string
	tlsClientCA       string
	rateLimit         float64
	rateBurst         int
	idempotencyTTL    time.Duration
	closeVerification bool
	batchBodyLimit    int64
}

func (c *securityConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.authMode, "auth", envOr("AUDIT_STREAM_AUTH", "auto"),
		"auto: require tokens once any exists, else run open with a warning; required: refuse to start open (env AUDIT_STREAM_AUTH)")
	fs.StringVar(&c.tokensFile, "tokens-file", envOr("AUDIT_STREAM_TOKENS_FILE", ""),
		"read-only JSON file of tokens (plain or sha256) and client-certificate subjects (env AUDIT_STREAM_TOKENS_FILE)")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain)")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&c.tlsClientCA, "tls-client-ca", "", "require client certificates signed by these PEM CAs (mTLS)")
	fs.Float64Var(&c.rateLimit, "rate-limit", 0, "requests per second allowed to each token (0: unlimited)")
	fs.IntVar(&c.rateBurst, "rate-burst", 0, "burst size of each token's rate limit (default: the rate, at least 1)")
	fs.DurationVar(&c.idempotencyTTL, "idempotency-ttl", 24*time.Hour, "how long Idempotency-Keys are kept (at least 24h recommended)")
	fs.BoolVar(&c.closeVerification, "close-verification", false, "require a token for checkpoints, proofs and tiles too")
	fs.Int64Var(&c.batchBodyLimit, "batch-body-limit", 16<<20, "maximum POST /events/batch body in bytes")
}

// load reads the tokens file and the TLS material named by the flags.
func (c *securityConfig) load() (httpapi.AuthOptions, *tls.Config, error) {
	opt := httpapi.AuthOptions{
		CloseVerification: c.closeVerification,
		RateLimit:         c.rateLimit,
		RateBurst:         c.rateBurst,
	}
	if c.authMode != "auto" && c.authMode != "required" {
		return opt, nil, fmt.Errorf("bad --auth %q (auto or required)", c.authMode)
	}
	if c.idempotencyTTL <= 0 {
		return opt, nil, fmt.Errorf("--idempotency-ttl must be positive")
	}
	if c.rateLimit < 0 || c.rateBurst < 0 {
		return opt, nil, fmt.Errorf("--rate-limit and --rate-burst must not be negative")
	}
	if c.tokensFile != "" {
		data, err := os.ReadFile(c.tokensFile)
		if err != nil {
			return opt, nil, err
		}
		if opt.File, err = auth.ParseFile(data); err != nil {
			return opt, nil, fmt.Errorf("%s: %w", c.tokensFile, err)
		}
	}
	cfg, err := c.tlsConfig()
	return opt, cfg, err
}

func (c *securityConfig) tlsConfig() (*tls.Config, error) {
	if c.tlsCert == "" && c.tlsKey == "" {
		if c.tlsClientCA != "" {
			return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if c.tlsCert == "" || c.tlsKey == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}
	if c.tlsClientCA != "" {
		pem, err := os.ReadFile(c.tlsClientCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", c.tlsClientCA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func (c *securityConfig) tlsMode() string {
	switch {
	case c.tlsClientCA != "":
		return "mtls"
	case c.tlsCert != "":
		return "on"
	}
	return "off"
}

// checkAuth enforces --auth=required and warns when the server runs open.
func (c *securityConfig) checkAuth(ctx context.Context, api *httpapi.Server, log *slog.Logger) error {
	on, err := api.AuthEnabled(ctx)
	if err != nil {
		return err
	}
	switch {
	case on:
		return nil
	case c.authMode == "required":
		return errors.New("--auth=required but no token exists: create one with 'audit-stream token create --role admin --data DIR --init' or pass --tokens-file")
	}
	log.Warn("no API tokens exist: the server is OPEN, anyone can append and read; create a token with 'audit-stream token create' to require them")
	return nil
}
