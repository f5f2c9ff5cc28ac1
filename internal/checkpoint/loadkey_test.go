package checkpoint_test

import (
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
)

// testdata/ed25519-pkcs8.pem was written by `openssl genpkey -algorithm
// ed25519`, and ed25519-pkcs8.pub holds the public key openssl derives from
// it (`openssl pkey -pubout -outform DER | tail -c 32 | base64`).
func TestLoadKeyPKCS8(t *testing.T) {
	k, err := checkpoint.LoadKey("testdata/ed25519-pkcs8.pem", "example.com/audit")
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := os.ReadFile("testdata/ed25519-pkcs8.pub")
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(string(pub)))
	want, err := note.NewEd25519VerifierKey("example.com/audit", raw)
	if err != nil {
		t.Fatal(err)
	}
	if k.VerifierKey != want {
		t.Fatalf("verifier key %s, openssl's public key gives %s", k.VerifierKey, want)
	}
	// It signs checkpoints that verify under that key.
	signed, err := verify.SignCheckpoint(verify.Checkpoint{Origin: "example.com/audit", Size: 0, Hash: verify.EmptyTreeHash}, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := verify.ParseVerifierKey(want)
	if _, err := verify.OpenCheckpoint(signed, v, ""); err != nil {
		t.Fatal(err)
	}
}

func TestLoadKeyFromEnvironment(t *testing.T) {
	skey, k, err := checkpoint.GenerateKey("example.com/audit")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_AUDIT_SIGNING_KEY", skey)
	got, err := checkpoint.LoadKey("env:TEST_AUDIT_SIGNING_KEY", "ignored/for/note/keys")
	if err != nil || got.VerifierKey != k.VerifierKey {
		t.Fatalf("note key from the environment: %v %v", got, err)
	}
	pem, _ := os.ReadFile("testdata/ed25519-pkcs8.pem")
	t.Setenv("TEST_AUDIT_SIGNING_KEY", string(pem))
	fromEnv, err := checkpoint.LoadKey("env:TEST_AUDIT_SIGNING_KEY", "example.com/audit")
	if err != nil {
		t.Fatal(err)
	}
	fromFile, _ := checkpoint.LoadKey("testdata/ed25519-pkcs8.pem", "example.com/audit")
	if fromEnv.VerifierKey != fromFile.VerifierKey {
		t.Fatal("PKCS#8 from the environment and from the file differ")
	}
}

func TestLoadKeyRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o600)
		return p
	}
	pemText, _ := os.ReadFile("testdata/ed25519-pkcs8.pem")
	_, vkey, _ := note.GenerateKey(rand.Reader, "example.com/audit")
	t.Setenv("TEST_AUDIT_EMPTY", "")
	for _, c := range []struct {
		name, source, origin, want string
	}{
		{"missing file", filepath.Join(dir, "nope"), "o", "no such file"},
		{"unset variable", "env:TEST_AUDIT_UNSET_VARIABLE", "o", "unset or empty"},
		{"empty variable", "env:TEST_AUDIT_EMPTY", "o", "unset or empty"},
		{"P-256 PKCS#8", "testdata/p256-pkcs8.pem", "o", "only Ed25519"},
		{"PKCS#8 without a name", "testdata/ed25519-pkcs8.pem", "", "carries no name"},
		{"public key PEM", write("pub.pem", "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA+F69bOHo6OQOxlrb0i5v77Dj7XltnT4Xlv2YaNhXQN4=\n-----END PUBLIC KEY-----\n"), "o", "PRIVATE KEY"},
		{"two PEM blocks", write("two.pem", string(pemText)+string(pemText)), "o", "one PEM block"},
		{"broken PEM", write("broken.pem", "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"), "o", "PEM block"},
		{"verifier key", write("v.key", vkey), "o", "note private key"},
		{"garbage", write("g.key", "hello"), "o", "note private key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := checkpoint.LoadKey(c.source, c.origin)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error saying %q", err, c.want)
			}
		})
	}
}
