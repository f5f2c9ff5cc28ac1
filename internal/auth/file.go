package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/internal/store"
)

// File is a parsed read-only tokens file. Its entries are fixed for the life
// of the process: containers and GitOps set-ups ship it as configuration.
type File struct {
	Tokens   []store.Token          // bearer tokens, looked up by digest
	Subjects map[string]store.Token // identities of client certificates, by subject
}

// fileEntry is one entry of the tokens file. Exactly one of Token (a plain
// secret), SHA256 (the hex digest of one, as 'token create' stores it) and
// Subject (a client certificate's subject, RFC 2253, e.g.
// "CN=billing,O=Acme") says how a caller proves it is this entry.
type fileEntry struct {
	ID      string   `json:"id"`
	Name    string   `json:"name,omitempty"`
	Roles   []string `json:"roles"`
	Sources []string `json:"sources,omitempty"`
	Token   string   `json:"token,omitempty"`
	SHA256  string   `json:"sha256,omitempty"`
	Subject string   `json:"subject,omitempty"`
	Expires string   `json:"expires,omitempty"` // RFC 3339
	// SigningKey is a producer verifier key its appends must be signed by.
	SigningKey string `json:"signing_key,omitempty"`
}

// ParseFile reads a tokens file:
//
//	{"tokens": [
//	  {"id": "ci", "roles": ["producer"], "sources": ["billing"], "sha256": "9f86d0..."},
//	  {"id": "grafana", "roles": ["reader"], "token": "a-long-plain-secret", "expires": "2027-01-01T00:00:00Z"},
//	  {"id": "billing-svc", "roles": ["producer"], "sources": ["billing"], "subject": "CN=billing-svc,O=Acme"}
//	]}
//
// Ids become the token ids in logs, prefixed "file:" so they never collide
// with database tokens.
func ParseFile(data []byte) (*File, error) {
	var doc struct {
		Tokens []fileEntry `json:"tokens"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("tokens file: data after the top-level object")
	}
	f := &File{Subjects: map[string]store.Token{}}
	ids := map[string]bool{}
	digests := map[[sha256.Size]byte]bool{}
	for i, e := range doc.Tokens {
		where := fmt.Sprintf("tokens file: entry %d", i)
		if e.ID == "" {
			return nil, fmt.Errorf("%s: id is required", where)
		}
		where += fmt.Sprintf(" (%s)", e.ID)
		if ids[e.ID] {
			return nil, fmt.Errorf("%s: duplicate id", where)
		}
		ids[e.ID] = true
		if err := (Spec{Name: e.Name, Roles: e.Roles, Sources: e.Sources, SigningKey: e.SigningKey}).Check(); err != nil {
			return nil, fmt.Errorf("%s: %v", where, err)
		}
		t := store.Token{ID: "file:" + e.ID, Name: e.Name, Roles: e.Roles, Sources: e.Sources, SigningKey: strings.TrimSpace(e.SigningKey)}
		if e.Expires != "" {
			exp, err := time.Parse(time.RFC3339, e.Expires)
			if err != nil {
				return nil, fmt.Errorf("%s: expires: want an RFC 3339 time like 2027-01-01T00:00:00Z", where)
			}
			t.Expires = exp
		}
		n := 0
		for _, s := range []string{e.Token, e.SHA256, e.Subject} {
			if s != "" {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("%s: give exactly one of token, sha256 and subject", where)
		}
		switch {
		case e.Subject != "":
			if _, dup := f.Subjects[e.Subject]; dup {
				return nil, fmt.Errorf("%s: duplicate subject %q", where, e.Subject)
			}
			f.Subjects[e.Subject] = t
			continue
		case e.Token != "":
			if len(e.Token) < 16 {
				return nil, fmt.Errorf("%s: a plain token must be at least 16 characters", where)
			}
			t.Digest = Digest(e.Token)
		default:
			b, err := hex.DecodeString(e.SHA256)
			if err != nil || len(b) != sha256.Size {
				return nil, fmt.Errorf("%s: sha256 must be 64 hex digits", where)
			}
			copy(t.Digest[:], b)
		}
		if digests[t.Digest] {
			return nil, fmt.Errorf("%s: the same secret as another entry", where)
		}
		digests[t.Digest] = true
		f.Tokens = append(f.Tokens, t)
	}
	return f, nil
}

// Len is the number of entries, bearer and certificate.
func (f *File) Len() int {
	if f == nil {
		return 0
	}
	return len(f.Tokens) + len(f.Subjects)
}

// ByDigest finds a bearer entry. It compares every entry in constant time,
// so the time taken says nothing about which entry, if any, matched.
func (f *File) ByDigest(d [sha256.Size]byte) (store.Token, bool) {
	if f == nil {
		return store.Token{}, false
	}
	found := -1
	for i := range f.Tokens {
		if Equal(f.Tokens[i].Digest, d) {
			found = i
		}
	}
	if found < 0 {
		return store.Token{}, false
	}
	return f.Tokens[found], true
}

// BySubject finds the identity of a client certificate subject.
func (f *File) BySubject(subject string) (store.Token, bool) {
	if f == nil {
		return store.Token{}, false
	}
	t, ok := f.Subjects[subject]
	return t, ok
}
