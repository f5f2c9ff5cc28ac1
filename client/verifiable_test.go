package client_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// An idempotency key makes a retry replay the stored events; batches are
// atomic and keyed the same way.
func TestClientAppendKeyedAndBatch(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	c := newClient(t, env.URL)
	ctx := context.Background()
	req := client.AppendRequest{Kind: "other", Source: "billing", Payload: json.RawMessage(`{"order":7731}`)}
	key := client.AppendOptions{IdempotencyKey: "order-7731"}

	first, err := c.AppendWith(ctx, req, key)
	if err != nil || first.Replayed || len(first.Events) != 1 || first.Events[0].ID != 1 {
		t.Fatalf("first: %+v, %v", first, err)
	}
	// The same request, encoded differently, is the same request.
	again, err := c.AppendWith(ctx, client.AppendRequest{Kind: "other", Source: "billing", Payload: json.RawMessage(`{ "order": 7731 }`)}, key)
	if err != nil || !again.Replayed || !equal(again.Events[0], first.Events[0]) {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	_, err = c.AppendWith(ctx, client.AppendRequest{Kind: "other", Source: "billing"}, key)
	var e *client.Error
	if !errors.As(err, &e) || e.Status != 422 {
		t.Fatalf("another body under the same key: %v", err)
	}

	batch := []client.AppendRequest{{Kind: "other", Source: "a"}, {Kind: "request_denied", Source: "b", Payload: json.RawMessage(`{"n":2}`)}, {Kind: "other", Source: "c"}}
	got, err := c.AppendBatch(ctx, batch, client.AppendOptions{IdempotencyKey: "batch-1"})
	if err != nil || got.Replayed || len(got.Events) != 3 {
		t.Fatalf("batch: %+v, %v", got, err)
	}
	for i, ev := range got.Events {
		if ev.ID != int64(2+i) || ev.Source != batch[i].Source {
			t.Fatalf("batch event %d: %+v", i, ev)
		}
	}
	replay, err := c.AppendBatch(ctx, batch, client.AppendOptions{IdempotencyKey: "batch-1"})
	if err != nil || !replay.Replayed || !equal(replay.Events[2], got.Events[2]) {
		t.Fatalf("batch retry: %+v, %v", replay, err)
	}

	for _, tc := range []struct {
		name   string
		batch  []client.AppendRequest
		status int // 0: refused by the client
		detail string
	}{
		{"a bad item", []client.AppendRequest{{Kind: "other", Source: "a"}, {Kind: "nope", Source: "b"}}, 422, "item 1: kind"},
		{"empty", nil, 0, "want 1 to 10000 events"},
		{"too many", make([]client.AppendRequest, client.MaxBatch+1), 0, "got 10001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AppendBatch(ctx, tc.batch, client.AppendOptions{})
			var e *client.Error
			if tc.status == 0 && (err == nil || errors.As(err, &e) || !strings.Contains(err.Error(), tc.detail)) ||
				tc.status != 0 && (!errors.As(err, &e) || e.Status != tc.status || !strings.Contains(e.Detail, tc.detail)) {
				t.Fatalf("got %v, want status %d with %q", err, tc.status, tc.detail)
			}
		})
	}
	if st, _ := c.Stats(ctx); st.Count != 4 {
		t.Fatalf("log holds %d events, want 4: a refused batch wrote", st.Count)
	}
}

// waitSigned waits until the server's checkpoint covers n events.
func waitSigned(t *testing.T, c *client.Client, v string, n int64) (verify.Checkpoint, []byte) {
	t.Helper()
	vk, err := verify.ParseVerifierKey(v)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		signed, err := c.Checkpoint(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		cp, err := verify.OpenCheckpoint(signed, vk, "")
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size >= n {
			return cp, signed
		}
		if time.Now().After(deadline) {
			t.Fatalf("checkpoint stuck at %d, want %d", cp.Size, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Everything a client needs to hold the server to what it signed: key,
// checkpoint, proofs, receipts and the export, each checked with package
// verify.
func TestClientVerifiableLog(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	c := newClient(t, env.URL, client.WithTimeout(10*time.Second))
	ctx := context.Background()
	for i := range 10 {
		if _, err := c.Append(ctx, client.AppendRequest{Kind: "other", Source: fmt.Sprint("s", i%3)}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := c.VerifierKey(ctx)
	if err != nil || key != env.Checkpoints.VerifierKey() {
		t.Fatalf("key %q, %v; want %q", key, err, env.Checkpoints.VerifierKey())
	}
	cp, signed := waitSigned(t, c, key, 10)
	if cp.Size != 10 {
		t.Fatalf("checkpoint size %d", cp.Size)
	}

	ev, err := c.Get(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := c.InclusionProof(ctx, 4, 0)
	if err != nil || ip.EventID != 4 || ip.LeafIndex != 3 || ip.TreeSize != 10 || ip.RootHash != cp.Hash {
		t.Fatalf("inclusion proof %+v, %v", ip, err)
	}
	if err := verify.CheckInclusion(cp, 4, ev.Hash, ip.Proof); err != nil {
		t.Fatal(err)
	}
	small, err := c.InclusionProof(ctx, 4, 6)
	if err != nil || small.TreeSize != 6 || small.RootHash == cp.Hash {
		t.Fatalf("proof at tree size 6: %+v, %v", small, err)
	}

	// A checkpoint of 6 events, as a witness would hold it, and the proof
	// that the latest one extends it.
	var tree verify.Tree
	for id := int64(1); id <= 6; id++ {
		e, err := c.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		tree.Add(e.Hash)
	}
	old := verify.Checkpoint{Origin: cp.Origin, Size: 6, Hash: tree.Root()}
	proof, err := c.Consistency(ctx, 6, 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := verify.CheckConsistency(old, cp, proof, nil, signed); err != nil {
		t.Fatal(err)
	}
	forged := old
	forged.Hash[0] ^= 1
	var inc *verify.InconsistencyError
	if err := verify.CheckConsistency(forged, cp, proof, nil, signed); !errors.As(err, &inc) {
		t.Fatalf("a forged older tree passed: %v", err)
	}

	rc, err := c.Receipt(ctx, 4)
	if err != nil || rc.Event.ID != 4 || rc.Event.Hash != ev.Hash {
		t.Fatalf("receipt %+v, %v", rc.Event, err)
	}
	vk, _ := verify.ParseVerifierKey(key)
	if _, err := rc.Verify(vk, ""); err != nil {
		t.Fatal(err)
	}
	reparsed, err := verify.ParseReceipt(rc.Marshal())
	if err != nil || reparsed.Event.Hash != ev.Hash {
		t.Fatalf("the receipt does not round-trip: %v", err)
	}

	body, err := c.Export(ctx, client.ExportOptions{Until: cp.Size})
	if err != nil {
		t.Fatal(err)
	}
	want := &verify.Target{Size: cp.Size, What: "the checkpoint", Root: func() (tlog.Hash, error) { return cp.Hash, nil }}
	rep, err := verify.CheckTreeRaw(ctx, verify.ExportSource(body), event.ParseStored, want, verify.StreamOptions{})
	body.Close()
	if err != nil || !rep.Valid || rep.Checked != 10 || rep.RootHash != event.Hash(cp.Hash).String() {
		t.Fatalf("export against the checkpoint: %+v, %v", rep, err)
	}
	body, err = c.Export(ctx, client.ExportOptions{After: 2, Until: 9, Sources: []string{"s1"}})
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(body)
	body.Close()
	if lines := strings.Split(strings.TrimSpace(string(part)), "\n"); len(lines) != 2 || !strings.Contains(lines[0], `"event_id":5,`) || !strings.Contains(lines[1], `"event_id":8,`) {
		t.Fatalf("filtered export:\n%s", part)
	}
	srep, err := c.Verify(ctx)
	if err != nil || !srep.Valid || srep.TreeSize != 10 {
		t.Fatalf("server verify: %+v, %v", srep, err)
	}

	if s, err := c.Health(ctx); s != "ok" || err != nil {
		t.Fatalf("health %q, %v", s, err)
	}
	if s, err := c.Ready(ctx); s != "ready" || err != nil {
		t.Fatalf("ready %q, %v", s, err)
	}

	for _, tc := range []struct {
		name   string
		call   func() error
		status int
		detail string
	}{
		{"proof of an event beyond the tree", func() error { _, err := c.InclusionProof(ctx, 11, 0); return err }, 404, "not in the tree"},
		{"proof at a tree size beyond the log", func() error { _, err := c.InclusionProof(ctx, 1, 99); return err }, 400, "beyond the tree"},
		{"consistency backwards", func() error { _, err := c.Consistency(ctx, 8, 4); return err }, 400, "larger than to"},
		{"receipt of no event", func() error { _, err := c.Receipt(ctx, 99); return err }, 404, "no event with id 99"},
		{"export range backwards", func() error { _, err := c.Export(ctx, client.ExportOptions{After: 5, Until: 2}); return err }, 400, "before after"},
		{"export of an unknown kind", func() error { _, err := c.Export(ctx, client.ExportOptions{Kinds: []string{"nope"}}); return err }, 422, `unknown kind "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var e *client.Error
			if !errors.As(err, &e) || e.Status != tc.status || !strings.Contains(e.Detail, tc.detail) {
				t.Fatalf("got %v, want %d with %q", err, tc.status, tc.detail)
			}
		})
	}
}

// A hostile or broken server cannot make the client read without bound or
// wait forever.
func TestClientBoundsWhatItReads(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	defer close(hang)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/checkpoint":
			w.Write([]byte(strings.Repeat("x", verify.MaxCheckpointSize+1)))
		case "/checkpoint/key":
			w.Write([]byte("not a key\n"))
		case "/stats":
			select {
			case <-hang:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	c := newClient(t, srv.URL, client.WithTimeout(200*time.Millisecond))
	ctx := context.Background()
	if _, err := c.Checkpoint(ctx); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("an oversized checkpoint: %v", err)
	}
	if _, err := c.VerifierKey(ctx); err == nil || !strings.Contains(err.Error(), "verifier key") {
		t.Errorf("a malformed key: %v", err)
	}
	start := time.Now()
	if _, err := c.Stats(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("a server that never answers: %v after %v", err, time.Since(start))
	}
}

// WithTLSConfig trusts a private CA, for Tail as for every other call.
func TestClientTLS(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	srv := httptest.NewUnstartedServer(env.API)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := newClient(t, srv.URL).Health(ctx); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unknown CA was trusted: %v", err)
	}
	cfg, err := client.TLSConfig(ca, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv.URL, client.WithTLSConfig(cfg), client.WithHTTPClient(&http.Client{}))
	if _, err := c.Append(ctx, client.AppendRequest{Kind: "other", Source: "tls"}); err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	for ev, err := range c.Tail(ctx, client.TailOptions{After: &zero}) {
		if err != nil || ev.Source != "tls" {
			t.Fatalf("tail over TLS: %+v, %v", ev, err)
		}
		break
	}

	for _, tc := range []struct{ name, ca, cert, key, want string }{
		{"missing CA file", filepath.Join(dir, "missing.pem"), "", "", "CA file"},
		{"CA file without a certificate", notPEM, "", "", "no PEM certificate"},
		{"certificate without key", "", ca, "", "both its certificate and its key"},
		{"key without certificate", "", "", ca, "both its certificate and its key"},
		{"not a key pair", "", ca, notPEM, "client certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := client.TLSConfig(tc.ca, tc.cert, tc.key); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	type roundTripper struct{ http.RoundTripper }
	if _, err := client.New(srv.URL, client.WithTLSConfig(cfg), client.WithHTTPClient(&http.Client{Transport: roundTripper{}})); err == nil {
		t.Fatal("WithTLSConfig over a transport it cannot configure was accepted")
	}
}
