package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// remote is the read side of a running audit-stream, for the verifier and
// the witness. It is deliberately small: plain GETs, every answer bounded.
type remote struct {
	base  string
	http  *http.Client
	token string // bearer token for reader routes (export, receipts)
}

func newRemote(raw string, conn *connFlags) (*remote, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url must be an http(s) URL, got %q", raw)
	}
	hc, err := conn.httpClient(30 * time.Second)
	if err != nil {
		return nil, err
	}
	return &remote{base: strings.TrimRight(raw, "/"), http: hc, token: conn.token}, nil
}

// open GETs path and returns the body of a 200 answer. A problem+json
// answer becomes an error carrying its detail.
func (r *remote) open(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+path, nil)
	if err != nil {
		return nil, err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var p struct{ Detail string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &p) != nil || p.Detail == "" {
			p.Detail = strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, p.Detail)
	}
	return resp.Body, nil
}

// get is open for small answers, read whole up to limit bytes.
func (r *remote) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	body, err := r.open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: answer larger than %d bytes", path, limit)
	}
	return b, nil
}

// checkpoint fetches and checks the latest signed checkpoint.
func (r *remote) checkpoint(ctx context.Context, v note.Verifier, origin string) (verify.Checkpoint, []byte, error) {
	signed, err := r.get(ctx, "/checkpoint", verify.MaxCheckpointSize)
	if err != nil {
		return verify.Checkpoint{}, nil, err
	}
	c, err := verify.OpenCheckpoint(signed, v, origin)
	return c, signed, err
}

// consistency fetches the consistency proof between two tree sizes.
func (r *remote) consistency(ctx context.Context, from, to int64) ([]tlog.Hash, error) {
	b, err := r.get(ctx, "/proof/consistency?from="+strconv.FormatInt(from, 10)+"&to="+strconv.FormatInt(to, 10), 64<<10)
	if err != nil {
		return nil, err
	}
	var ans struct{ Proof []event.Hash }
	if err := json.Unmarshal(b, &ans); err != nil {
		return nil, fmt.Errorf("consistency proof: %w", err)
	}
	out := make([]tlog.Hash, len(ans.Proof))
	for i, h := range ans.Proof {
		out[i] = tlog.Hash(h)
	}
	return out, nil
}

// errUsage marks an error that is the caller's mistake: exit status 2.
var errUsage = errors.New("usage")

// verifierKey resolves a --key value: the key itself or @FILE.
func verifierKey(val string) (note.Verifier, error) {
	if rest, ok := strings.CutPrefix(val, "@"); ok {
		b, err := os.ReadFile(rest)
		if err != nil {
			return nil, fmt.Errorf("--key: %w", err)
		}
		val = string(b)
	}
	return verify.ParseVerifierKey(val)
}
