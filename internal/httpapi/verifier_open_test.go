package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// TestVerifierOpen: verification material is open by default and closes
// with CloseVerification (then any valid token may read it).
func TestVerifierOpen(t *testing.T) {
	t.Parallel()
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
