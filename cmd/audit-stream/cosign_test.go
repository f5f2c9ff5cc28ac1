package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
)

func TestParseWitnessFlag(t *testing.T) {
	_, vkey, err := witness.GenerateKey("witness.example.org/w1")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "w1.pub")
	os.WriteFile(keyFile, []byte(vkey+"\n"), 0o600)
	for _, ok := range []string{
		"w1=http://127.0.0.1:8094+" + vkey,
		"w1=https://witness.example.org/prefix+" + vkey,
		"w1=https://witness.example.org/a+b+" + vkey, // '+' inside the URL
		"w1=http://127.0.0.1:8094+@" + keyFile,
	} {
		w, err := parseWitness(ok)
		if err != nil {
			t.Errorf("%s: %v", ok, err)
			continue
		}
		if w.Name != "w1" || w.Client.Verifier.Name() != "witness.example.org/w1" || strings.Contains(w.Client.URL, vkey) {
			t.Errorf("%s: parsed %+v", ok, w)
		}
	}
	_, logKey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	for _, c := range []struct{ in, want string }{
		{"http://127.0.0.1:8094+" + vkey, "want NAME=URL+KEY"},
		{"=http://127.0.0.1:8094+" + vkey, "want NAME=URL+KEY"},
		{"w1=http://127.0.0.1:8094", "no witness verifier key"},
		{"w1=http://127.0.0.1:8094+" + strings.Replace(vkey, "+B", "+A", 1), "no witness verifier key"},
		{"w1=ftp://127.0.0.1+" + vkey, "not an http(s) URL"},
		{"w1=127.0.0.1:8094+" + vkey, "not an http(s) URL"},
		{"w1=http://127.0.0.1:8094+@/nonexistent/key", "no such file"},
		{"w1=http://127.0.0.1:8094+" + logKey, "no witness verifier key"}, // a log's key, not a witness's,
	} {
		if _, err := parseWitness(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error saying %q", c.in, err, c.want)
		}
	}
	var l witnessList
	if err := l.Set("w1=http://a+" + vkey + " w1=http://b+" + vkey); err == nil {
		t.Error("two witnesses with one name accepted")
	}
}
