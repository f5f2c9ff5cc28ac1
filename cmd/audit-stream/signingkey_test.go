package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/e2e"
	"golang.org/x/mod/sumdb/note"
)

// pkcs8 returns a new Ed25519 key as a PEM PKCS#8 block and the note
// verifier key it has when named origin.
func pkcs8(t *testing.T, origin string) (string, string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := note.NewEd25519VerifierKey(origin, pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), vkey
}

// The signing key comes from a PKCS#8 file or from an environment
// variable; the same key either way is the same log, another key is
// refused unless rotating.
func TestServeSigningKeySources(t *testing.T) {
	const origin = "example.com/keys"
	dir := t.TempDir()
	pemText, vkey := pkcs8(t, origin)
	keyFile := filepath.Join(t.TempDir(), "signing.pem")
	os.WriteFile(keyFile, []byte(pemText), 0o600)
	srv := e2e.Start(t, dir, "", "--origin", origin, "--signing-key", keyFile, "--checkpoint-interval", "50ms")
	if got := strings.TrimSpace(string(fetch(t, srv.URL+"/checkpoint/key"))); got != vkey {
		t.Fatalf("served key %s, want %s", got, vkey)
	}
	postEvent(srv.URL, 1)
	waitCheckpoint(t, srv.URL, 1)
	stop(t, srv)
	if code, out, errs := cli(t, "key", "show", "--signing-key", keyFile, "--origin", origin); code != 0 || strings.TrimSpace(out) != vkey {
		t.Fatalf("key show of the PKCS#8 file: %d %q %s", code, out, errs)
	}

	// The same key from the environment: the same log.
	t.Setenv("TEST_AUDIT_LOG_KEY", pemText)
	srv = e2e.Start(t, dir, "", "--origin", origin, "--signing-key", "env:TEST_AUDIT_LOG_KEY")
	if got := strings.TrimSpace(string(fetch(t, srv.URL+"/checkpoint/key"))); got != vkey {
		t.Fatalf("served key from the environment %s, want %s", got, vkey)
	}
	stop(t, srv)

	// Another key from the environment is refused, then accepted with
	// --rotate, after which the new key signs.
	other, otherV := pkcs8(t, origin)
	t.Setenv("TEST_AUDIT_LOG_KEY", other)
	out, err := exec.Command(e2e.Binary(t), "serve", "--addr", "127.0.0.1:0", "--data", dir, "--origin", origin, "--signing-key", "env:TEST_AUDIT_LOG_KEY").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing to start") || !strings.Contains(string(out), "--rotate") {
		t.Fatalf("another key from the environment: %v\n%s", err, out)
	}
	srv = e2e.Start(t, dir, "", "--origin", origin, "--signing-key", "env:TEST_AUDIT_LOG_KEY", "--rotate")
	if got := strings.TrimSpace(string(fetch(t, srv.URL+"/checkpoint/key"))); got != otherV {
		t.Fatalf("after rotation the served key is %s, want %s", got, otherV)
	}
	stop(t, srv)

	// Mistakes are named, and nothing starts.
	t.Setenv("TEST_AUDIT_LOG_KEY", "")
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"--signing-key", "env:TEST_AUDIT_LOG_KEY"}, "unset or empty"},
		{[]string{"--signing-key", filepath.Join(dir, "no-such.key")}, "no such file"},
	} {
		out, err := exec.Command(e2e.Binary(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--origin", origin}, c.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), c.says) {
			t.Errorf("serve %v: %v\n%s", c.args, err, out)
		}
	}
}
