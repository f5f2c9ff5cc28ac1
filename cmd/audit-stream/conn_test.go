package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIOverMTLS: every client command speaks TLS like the server, with a
// client certificate standing in for a token.
func TestCLIOverMTLS(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir)
	certFile := filepath.Join(dir, "client.pem")
	keyFile := filepath.Join(dir, "client-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.client.Certificate[0]}), 0o600)
	kDER, _ := x509.MarshalECPrivateKey(p.client.PrivateKey.(*ecdsa.PrivateKey))
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kDER}), 0o600)
	tokens := filepath.Join(dir, "tokens.json")
	os.WriteFile(tokens, []byte(`{"tokens":[{"id":"ops","roles":["admin"],"subject":"CN=billing-svc,O=Acme"}]}`), 0o600)
	addr, _ := serveInProcess(t, "--tls-cert", p.serverCert, "--tls-key", p.serverKey,
		"--tls-client-ca", p.caFile, "--tokens-file", tokens, "--auth", "required", "--checkpoint-interval", "20ms")
	url := "https://" + addr
	conn := []string{"--url", url, "--cacert", p.caFile, "--cert", certFile, "--key-file", keyFile}

	if code, out, errs := cli(t, append([]string{"append", "--kind", "other", "--source", "billing"}, conn...)...); code != 0 {
		t.Fatalf("append over mTLS: %d %s %s", code, out, errs)
	}
	code, out, errs := cli(t, append([]string{"export"}, conn...)...)
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"event_id":1`) {
		t.Fatalf("export over mTLS: %d %q %s", code, out, errs)
	}
	time.Sleep(100 * time.Millisecond) // a checkpoint covers the event
	if code, out, errs := cli(t, append([]string{"verify", "--quiet"}, conn...)...); code != 0 || !strings.Contains(out, `"valid":true`) {
		t.Fatalf("verify over mTLS: %d %s %s", code, out, errs)
	}
	c, err := (&clientFlags{cacert: p.caFile, cert: certFile, keyFile: keyFile}).client(url, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := c.VerifierKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "witness.state")
	if code, out, errs := cli(t, append([]string{"witness", "--once", "--key", vkey, "--state", state}, conn...)...); code != 0 {
		t.Fatalf("witness over mTLS: %d %s %s", code, out, errs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var tailOut, tailErr bytes.Buffer
	run(ctx, append([]string{"tail", "--after", "0"}, conn...), strings.NewReader(""), &tailOut, &tailErr)
	if !strings.Contains(tailOut.String(), `"event_id":1`) {
		t.Fatalf("tail over mTLS: %q %s", tailOut.String(), tailErr.String())
	}

	// What is missing is named.
	refusals := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"append", "--kind", "other", "--source", "billing", "--url", url, "--cacert", p.caFile}, 1, "append: "}, // TLS 1.3 reports the missing certificate after the handshake, in varying words
		{[]string{"export", "--url", url, "--cert", certFile, "--key-file", keyFile}, 2, "certificate signed by unknown authority"},
		{[]string{"export", "--url", url, "--cacert", p.caFile, "--cert", certFile}, 0, "--cert and --key-file go together"},
		{[]string{"verify", "--url", url, "--cacert", filepath.Join(dir, "missing.pem")}, 2, "--cacert"},
		{[]string{"witness", "--once", "--key", vkey, "--state", state, "--url", url, "--cacert", keyFile}, 2, "no PEM certificate"},
	}
	for _, r := range refusals {
		code, _, errs := cli(t, r.args...)
		if code == 0 || (r.code != 0 && code != r.code) || !strings.Contains(errs, r.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", r.args[0], code, errs, r.code, r.want)
		}
	}
}

func TestHealthCommand(t *testing.T) {
	t.Parallel()
	addr, _ := serveInProcess(t)
	for _, args := range [][]string{{"health"}, {"health", "--ready"}} {
		code, out, errs := cli(t, append(args, "--url", "http://"+addr)...)
		if code != 0 || !strings.Contains(out, "status") {
			t.Errorf("%v: %d %s %s", args, code, out, errs)
		}
	}
	if code, _, errs := cli(t, "health", "--url", "http://"+addr+"/nowhere"); code != 1 || !strings.Contains(errs, "404") {
		t.Errorf("health on a wrong URL: %d %s", code, errs)
	}
	if code, _, _ := cli(t, "health", "--url", "http://127.0.0.1:1", "--timeout", "1s"); code != 1 {
		t.Errorf("health on a closed port: %d", code)
	}
}
