package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
)

// pki is a CA with a server and a client certificate, made for one test.
type pki struct {
	pool                  *x509.CertPool
	caFile                string
	serverCert, serverKey string
	client                tls.Certificate
}

func newPKI(t *testing.T, dir string) *pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: subject, IPAddresses: ips,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := &pki{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.caFile = write("ca.pem", "CERTIFICATE", caDER)
	sDER, sKey := issue(2, pkix.Name{CommonName: "audit-stream"}, x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
	p.serverCert = write("server.pem", "CERTIFICATE", sDER)
	skDER, _ := x509.MarshalECPrivateKey(sKey)
	p.serverKey = write("server-key.pem", "EC PRIVATE KEY", skDER)
	cDER, cKey := issue(3, pkix.Name{CommonName: "billing-svc", Organization: []string{"Acme"}}, x509.ExtKeyUsageClientAuth, nil)
	p.client = tls.Certificate{Certificate: [][]byte{cDER}, PrivateKey: cKey}
	return p
}

// syncBuf is stderr shared between the server goroutine and the test.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// serveInProcess runs 'audit-stream serve' in-process until the test ends
// and returns the address it listens on.
func serveInProcess(t *testing.T, args ...string) (addr string, logs *syncBuf) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs = &syncBuf{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, args...), nil, io.Discard, logs)
	}()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, rest, ok := strings.Cut(logs.String(), "listening addr="); ok {
			return strings.Fields(rest)[0], logs
		}
		select {
		case code := <-done:
			done <- code // for the cleanup
			t.Fatalf("serve exited with %d:\n%s", code, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not start:\n%s", logs.String())
	return "", nil
}

func tlsClient(p *pki, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: p.pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// appendAs appends an event of source through c and returns the status
// the server answered with.
func appendAs(t *testing.T, c *client.Client, source string) int {
	t.Helper()
	code, err := appendStatus(c, client.AppendRequest{Kind: "other", Source: source})
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return code
}

func TestTLS(t *testing.T) {
	p := newPKI(t, t.TempDir())
	addr, logs := serveInProcess(t, "--tls-cert", p.serverCert, "--tls-key", p.serverKey)
	if !strings.Contains(logs.String(), "tls=on") {
		t.Errorf("start-up log does not say TLS is on:\n%s", logs.String())
	}
	res, err := tlsClient(p, nil).Get("https://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /healthz over TLS: %d", res.StatusCode)
	}
	if res, err := http.Get("http://" + addr + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode == 200 {
			t.Fatal("plain HTTP served by a TLS listener")
		}
	}
}

// TestMTLS: client certificates are required, and one mapped in the tokens
// file stands in for a token, with its role and sources; the events'
// provenance names the certificate.
func TestMTLS(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir)
	tokens := filepath.Join(dir, "tokens.json")
	os.WriteFile(tokens, []byte(`{"tokens":[{"id":"billing-svc","roles":["producer"],"sources":["billing"],"subject":"CN=billing-svc,O=Acme"},
		{"id":"auditor","roles":["reader"],"token":"auditor-secret-0123456789"}]}`), 0o600)
	addr, _ := serveInProcess(t, "--tls-cert", p.serverCert, "--tls-key", p.serverKey,
		"--tls-client-ca", p.caFile, "--tokens-file", tokens, "--auth", "required")
	url := "https://" + addr

	if _, err := tlsClient(p, nil).Get(url + "/healthz"); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	c, err := client.New(url, client.WithHTTPClient(tlsClient(p, &p.client)))
	if err != nil {
		t.Fatal(err)
	}
	if code := appendAs(t, c, "billing"); code != 201 {
		t.Fatalf("append with the client certificate: %d", code)
	}
	if code := appendAs(t, c, "payroll"); code != 403 {
		t.Fatalf("append as another source: %d, want 403", code)
	}
	var e *client.Error
	if _, err := c.Stats(context.Background()); !errors.As(err, &e) || e.Status != 403 {
		t.Fatalf("producer certificate reading /stats: %v, want 403", err)
	}
	auditor, err := client.New(url, client.WithHTTPClient(tlsClient(p, &p.client)), client.WithToken("auditor-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	if prov, err := auditor.Provenance(context.Background(), 1); err != nil || prov.AppendedBy != "cert:CN=billing-svc,O=Acme" {
		t.Fatalf("provenance of the certificate's event: %+v, %v", prov, err)
	}
}

func TestAuthRequiredRefusesOpen(t *testing.T) {
	var stderr syncBuf
	code := run(context.Background(), []string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir(), "--auth", "required"}, nil, io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "no token exists") {
		t.Fatalf("exit %d:\n%s", code, stderr.String())
	}
}

func TestOpenWarning(t *testing.T) {
	_, logs := serveInProcess(t)
	if !strings.Contains(logs.String(), "server is OPEN") {
		t.Fatalf("no warning when running open:\n%s", logs.String())
	}
}

func TestTokenCommand(t *testing.T) {
	ctx := context.Background()
	data := filepath.Join(t.TempDir(), "data")
	var out, errb bytes.Buffer
	code := run(ctx, []string{"token", "create", "--role", "producer", "--source", "billing", "--source", "shipping", "--name", "ci", "--expires", "90d", "--data", data, "--init"}, nil, &out, &errb)
	if code != 0 {
		t.Fatalf("create: exit %d: %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	secret := lines[0]
	if !strings.HasPrefix(secret, "ast_") || strings.Contains(secret, " ") {
		t.Fatalf("first line is not the secret alone: %q", secret)
	}
	id := strings.TrimSpace(strings.TrimPrefix(lines[1], "id:"))

	// The server sees the token, even though the CLI made it first.
	addr, _ := serveInProcess(t, "--data", data)
	c, err := client.New("http://"+addr, client.WithToken(secret))
	if err != nil {
		t.Fatal(err)
	}
	if code := appendAs(t, c, "shipping"); code != 201 {
		t.Fatalf("append with the CLI's token: %d", code)
	}

	out.Reset()
	if code := run(ctx, []string{"token", "list", "--data", data}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), id) || strings.Contains(out.String(), secret) {
		t.Fatalf("list: exit %d:\n%s", code, out.String())
	}
	out.Reset()
	// While the server runs (it holds the directory lock).
	if code := run(ctx, []string{"token", "revoke", id, "--data", data}, nil, &out, &errb); code != 0 {
		t.Fatalf("revoke: exit %d: %s", code, errb.String())
	}
	if code := appendAs(t, c, "shipping"); code != 401 {
		t.Fatalf("append after revoke: %d", code)
	}
	out.Reset()
	run(ctx, []string{"token", "list", "--data", data}, nil, &out, &errb)
	if !strings.Contains(out.String(), "revoked") {
		t.Fatalf("list after revoke:\n%s", out.String())
	}

	for _, bad := range [][]string{
		{"token", "create", "--role", "producer"},
		{"token", "create", "--role", "root"},
		{"token", "create", "--role", "reader", "--expires", "soon"},
		{"token", "revoke"},
		{"token", "frobnicate"},
	} {
		errb.Reset()
		if code := run(ctx, append(bad, "--data", data), nil, io.Discard, &errb); code != 2 || errb.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q; want 2 with a message", bad, code, errb.String())
		}
	}
	if code := run(ctx, []string{"token", "revoke", "tok_nope", "--data", data}, nil, io.Discard, &errb); code != 1 {
		t.Errorf("revoking an unknown id: exit %d", code)
	}
}
