package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
)

func TestNew(t *testing.T) {
	now := time.Now()
	s1, t1, err := New(Spec{Roles: []string{"producer", "reader", "producer"}, Sources: []string{"b", "a"}, TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	s2, t2, _ := New(Spec{Roles: []string{"admin"}}, now)
	if s1 == s2 || t1.ID == t2.ID || !strings.HasPrefix(s1, SecretPrefix) || len(s1) < len(SecretPrefix)+43 {
		t.Fatalf("secrets %q %q, ids %q %q", s1, s2, t1.ID, t2.ID)
	}
	if t1.Digest != Digest(s1) || strings.Join(t1.Roles, ",") != "producer,reader" || strings.Join(t1.Sources, ",") != "a,b" {
		t.Fatalf("token %+v", t1)
	}
	if !t1.Expires.Equal(now.Add(time.Hour)) || !t2.Expires.IsZero() {
		t.Fatalf("expiry %v / %v", t1.Expires, t2.Expires)
	}
}

func TestSpecRejections(t *testing.T) {
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"no role", Spec{}, "at least one role"},
		{"unknown role", Spec{Roles: []string{"root"}}, "unknown role"},
		{"producer without source", Spec{Roles: []string{"producer"}}, "at least one source"},
		{"empty source", Spec{Roles: []string{"producer"}, Sources: []string{""}}, "source"},
		{"long source", Spec{Roles: []string{"producer"}, Sources: []string{strings.Repeat("s", 257)}}, "source"},
		{"bad utf-8", Spec{Roles: []string{"producer"}, Sources: []string{"\xff"}}, "UTF-8"},
		{"signing key not a key", Spec{Roles: []string{"producer"}, Sources: []string{"b"}, SigningKey: "billing"}, "producer key"},
		{"signing key private", Spec{Roles: []string{"producer"}, Sources: []string{"b"}, SigningKey: "PRIVATE+KEY+example.com/audit+36700de8+AfQCGjza9jXduHN/N4HIbtZafqWYzrd31iVO8M0PRFpq"}, "producer key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.spec.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseTTL(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "never": 0, "90d": 90 * 24 * time.Hour, "36h": 36 * time.Hour, "30m": 30 * time.Minute} {
		if got, err := ParseTTL(in); err != nil || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"d", "-1d", "0d", "soon", "-5h", "1e9d", "99999999d"} {
		if _, err := ParseTTL(bad); err == nil {
			t.Errorf("ParseTTL(%q) accepted", bad)
		}
	}
}

func TestParseFileRejections(t *testing.T) {
	const h = `"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"`
	for _, c := range []struct{ name, in, want string }{
		{"not json", `tokens`, "tokens file"},
		{"unknown field", `{"tokens":[],"x":1}`, "unknown field"},
		{"no id", `{"tokens":[{"roles":["reader"],` + h + `}]}`, "id is required"},
		{"dup id", `{"tokens":[{"id":"a","roles":["reader"],` + h + `},{"id":"a","roles":["reader"],"token":"0123456789abcdef"}]}`, "duplicate id"},
		{"two secrets", `{"tokens":[{"id":"a","roles":["reader"],` + h + `,"token":"0123456789abcdef"}]}`, "exactly one"},
		{"none", `{"tokens":[{"id":"a","roles":["reader"]}]}`, "exactly one"},
		{"short plain", `{"tokens":[{"id":"a","roles":["reader"],"token":"short"}]}`, "at least 16"},
		{"bad hex", `{"tokens":[{"id":"a","roles":["reader"],"sha256":"zz"}]}`, "64 hex"},
		{"bad role", `{"tokens":[{"id":"a","roles":["root"],` + h + `}]}`, "unknown role"},
		{"bad expiry", `{"tokens":[{"id":"a","roles":["reader"],"expires":"tomorrow",` + h + `}]}`, "RFC 3339"},
		{"same secret", `{"tokens":[{"id":"a","roles":["reader"],` + h + `},{"id":"b","roles":["reader"],` + h + `}]}`, "same secret"},
		{"trailing", `{"tokens":[]} {}`, "after the top-level"},
		{"bad signing key", `{"tokens":[{"id":"a","roles":["producer"],"sources":["b"],"signing_key":"nope",` + h + `}]}`, "producer key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := ParseFile([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ParseFile = %v, want %q", err, c.want)
			}
		})
	}
}

func TestParseFile(t *testing.T) {
	f, err := ParseFile([]byte(`{"tokens":[
		{"id":"ci","roles":["producer"],"sources":["billing"],"token":"0123456789abcdef"},
		{"id":"svc","roles":["reader"],"subject":"CN=svc,O=Acme","expires":"2030-01-01T00:00:00Z"},
		{"id":"signed","roles":["producer"],"sources":["billing"],"subject":"CN=billing","signing_key":" ` + producerVKey + `\n"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if tok, ok := f.ByDigest(Digest("0123456789abcdef")); !ok || tok.ID != "file:ci" || !tok.Has(store.RoleProducer) {
		t.Fatalf("ByDigest = %+v, %v", tok, ok)
	}
	if _, ok := f.ByDigest(Digest("0123456789abcdeX")); ok {
		t.Fatal("ByDigest matched a wrong secret")
	}
	if tok, ok := f.BySubject("CN=svc,O=Acme"); !ok || tok.Expires.Year() != 2030 {
		t.Fatalf("BySubject = %+v, %v", tok, ok)
	}
	if tok, ok := f.BySubject("CN=billing"); !ok || tok.SigningKey != producerVKey {
		t.Fatalf("signing key from the file: %+v, %v", tok, ok)
	}
	if f.Len() != 3 {
		t.Fatalf("Len = %d", f.Len())
	}
}

const producerVKey = "example.com/audit+36700de8+AQwmQYMTkSnCBc0fvdL3b9MduBIWfI/UFhhe/YfNCn13"

// FuzzParseFile: never panics; whatever it accepts is usable.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"tokens":[{"id":"ci","roles":["producer"],"sources":["billing"],"token":"0123456789abcdef"}]}`))
	f.Add([]byte(`{"tokens":[{"id":"svc","roles":["reader"],"subject":"CN=svc","expires":"2030-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"tokens":[{"id":"h","roles":["admin"],"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseFile(data)
		if err != nil {
			return
		}
		for _, tok := range file.Tokens {
			if (Spec{Roles: tok.Roles, Sources: tok.Sources}).Check() != nil || !strings.HasPrefix(tok.ID, "file:") {
				t.Fatalf("accepted an unusable entry %+v", tok)
			}
		}
	})
}

func FuzzParseTTL(f *testing.F) {
	for _, s := range []string{"90d", "36h", "never", "-1d", "1.5h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseTTL(s); err == nil && d < 0 {
			t.Fatalf("ParseTTL(%q) = %v", s, d)
		}
	})
}
