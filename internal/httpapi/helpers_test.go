package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/store"
)

// resp is a finished HTTP exchange.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) detail() string {
	var p struct{ Detail string }
	json.Unmarshal(r.body, &p)
	return p.Detail
}

// call sends one request; token "" sends no Authorization header. Extra
// headers come in pairs. GET /stream returns as soon as the headers are in.
func call(t testing.TB, method, url, token, body string, hdr ...string) resp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := apitest.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	var b []byte
	if res.Header.Get("Content-Type") != "text/event-stream" {
		b, _ = io.ReadAll(res.Body)
	}
	return resp{res.StatusCode, res.Header, b}
}

// mint stores a new token and returns its secret.
func mint(t testing.TB, st store.Store, spec auth.Spec, edit func(*store.Token)) (string, store.Token) {
	t.Helper()
	secret, tok, err := auth.New(spec, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&tok)
	}
	if err := st.CreateToken(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	return secret, tok
}

func count(t testing.TB, st store.Store) int64 {
	t.Helper()
	h, err := st.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h.ID
}

// syncBuffer collects log output written from many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const ev = `{"kind":"other","source":"billing","payload":{"n":1}}`
