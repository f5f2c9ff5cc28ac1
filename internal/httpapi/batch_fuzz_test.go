package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// FuzzParseBatch: the splitter plus the strict item parser accept a JSON
// array body only if it is valid JSON, and then with one request per item.
func FuzzParseBatch(f *testing.F) {
	for _, s := range []string{
		`[]`, `[{"kind":"other","source":"a"}]`,
		` [ {"kind":"other","source":"a","payload":{"x":["]",{"}":1}]}} , {"kind":"other","source":"b"} ] `,
		`[{"kind":"other","source":"a\"]"}]`, `[{"kind":"other","source":"a"},]`, `[1,2]`, `[[]]`, `[{]`, `{"a":1}`, `["\`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reqs, err := parseBatch(body, false, nil)
		if err != nil {
			return
		}
		var items []json.RawMessage
		if !json.Valid(body) || json.Unmarshal(body, &items) != nil {
			t.Fatalf("accepted a body that is not a JSON array: %q", body)
		}
		if len(items) != len(reqs) {
			t.Fatalf("%d requests from an array of %d items: %q", len(reqs), len(items), body)
		}
		if _, err := parseBatch(body, true, nil); err == nil && len(reqs) > 1 {
			// A multi-item array on one line is never valid NDJSON.
			t.Fatalf("array accepted as NDJSON: %q", body)
		}
	})
}

// TestVerifierOpen: verification material is open by default and closes
// with CloseVerification (then any valid token may read it).
func TestVerifierOpen(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	secret, tok, _ := auth.New(auth.Spec{Roles: []string{"producer"}, Sources: []string{"x"}}, time.Now())
	if err := st.CreateToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	for _, closed := range []bool{false, true} {
		s := New(st, led, Options{Auth: AuthOptions{CloseVerification: closed}})
		h := s.guard(verifierOpen, ok)
		for _, c := range []struct {
			token string
			want  int
		}{{"", 299}, {secret, 299}} {
			if closed && c.token == "" {
				c.want = 401
			}
			req := httptest.NewRequest("GET", "/checkpoint", nil)
			if c.token != "" {
				req.Header.Set("Authorization", "Bearer "+c.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Errorf("closed=%v token=%v: %d, want %d", closed, c.token != "", rec.Code, c.want)
			}
		}
	}
}
