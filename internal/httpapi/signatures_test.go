package httpapi_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/prodsig"
	"github.com/audit-stream/audit-stream/provenance"
	"golang.org/x/mod/sumdb/note"
)

// producerKey makes an Ed25519 producer key as audit-stream keygen does.
func producerKey(t testing.TB, name string) (note.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

// signBody returns the Audit-Signature header for a request body (a JSON
// object, or with batch a JSON array of them), signed by s.
func signBody(t testing.TB, s note.Signer, body string, batch bool) string {
	t.Helper()
	var reqs []event.Request
	if batch {
		var err error
		if reqs, err = event.ParseBatch([]byte(body), false, nil, nil); err != nil {
			t.Fatal(err)
		}
	} else {
		r, err := event.ParseRequest([]byte(body), nil)
		if err != nil {
			t.Fatal(err)
		}
		reqs = []event.Request{r}
	}
	h, err := prodsig.Sign(s, reqs)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func getProvenance(t testing.TB, url, token string, id int64) provenance.Event {
	t.Helper()
	r := call(t, "GET", url+"/events/"+strconv.FormatInt(id, 10)+"/provenance", token, "")
	if r.status != http.StatusOK {
		t.Fatalf("provenance of event %d: %d %s", id, r.status, r.body)
	}
	var p provenance.Event
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSignedAppends: a token registered with a producer key appends events
// the client signs, singly and in a batch; each event's provenance names
// the token, the key and a signature that verifies over what was sent, and
// the producer's own timestamp.
func TestSignedAppends(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	signer, vkey := producerKey(t, "billing.example.com")
	secret, tok := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}, SigningKey: vkey}, nil)
	reader, _ := mint(t, env.Store, auth.Spec{Roles: []string{"reader"}}, nil)
	c, err := client.New(env.URL, client.WithToken(secret), client.WithSigner(signer))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e, err := c.Append(ctx, client.AppendRequest{Kind: "other", Source: "billing", Payload: json.RawMessage(`{"b": 2, "a": [1.50, "x"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.AppendBatch(ctx, []client.AppendRequest{
		{Kind: "other", Source: "billing"},
		{Kind: "other", Source: "billing"}, // equal content: the client's timestamps tell them apart
		{Kind: "other", Source: "billing", Timestamp: "2026-05-15T03:14:15Z"},
	}, client.AppendOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := prodsig.ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range append([]event.Event{e}, batch.Events...) {
		p := getProvenance(t, env.URL, reader, ev.ID)
		if p.AppendedBy != "token:"+tok.ID || p.KeyID != prodsig.KeyID(v.Name(), v.KeyHash()) || !p.ProducerTimestamp || p.TimestampSkewed && ev.ID != 4 {
			t.Fatalf("provenance of event %d: %+v", ev.ID, p)
		}
		req := prodsig.RequestOf(&ev, p.ProducerTimestamp)
		if !prodsig.Verify(v, &req, p.Signature) {
			t.Fatalf("event %d: the stored signature does not verify over the stored event", ev.ID)
		}
		if _, err := event.ParseTimestamp(p.ReceivedAt); err != nil {
			t.Fatalf("received_at %q: %v", p.ReceivedAt, err)
		}
	}
	if p := getProvenance(t, env.URL, reader, 3); p.Batch.FirstID != 2 || p.Batch.Count != 3 {
		t.Fatalf("event 3 is in the batch of 2..4, provenance says %+v", p.Batch)
	}
	// A keyed append is not stamped, so a retry is the same request and
	// replays.
	keyed := client.AppendRequest{Kind: "other", Source: "billing", Payload: json.RawMessage(`{"order":7731}`)}
	first, err := c.AppendWith(ctx, keyed, client.AppendOptions{IdempotencyKey: "order-7731"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.AppendWith(ctx, keyed, client.AppendOptions{IdempotencyKey: "order-7731"})
	if err != nil || !again.Replayed || again.Events[0].ID != first.Events[0].ID {
		t.Fatalf("keyed signed retry: %+v, %v", again, err)
	}
	// What the server would refuse, a signing client refuses before
	// sending, with the same reasons.
	if _, err := c.AppendBatch(ctx, []client.AppendRequest{{Source: "billing"}}, client.AppendOptions{}); err == nil || !strings.Contains(err.Error(), "kind") {
		t.Fatalf("a signed batch item without a kind: %v", err)
	}
	big := make([]client.AppendRequest, 501)
	for i := range big {
		big[i] = client.AppendRequest{Kind: "other", Source: "billing"}
	}
	if _, err := c.AppendBatch(ctx, big, client.AppendOptions{}); err == nil || !strings.Contains(err.Error(), "at most 500") {
		t.Fatalf("a signed batch of 501: %v", err)
	}
	// The client's provenance call reads the same.
	rc, _ := client.New(env.URL, client.WithToken(reader))
	if p, err := rc.Provenance(ctx, 1); err != nil || p.EventID != 1 || len(p.Signature) != 64 {
		t.Fatalf("client.Provenance(1) = %+v, %v", p, err)
	}
	// An unsigned producer on the same server: provenance without a key.
	plain, ptok := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	if r := call(t, "POST", env.URL+"/events", plain, ev); r.status != http.StatusCreated {
		t.Fatalf("unsigned append: %d %s", r.status, r.body)
	}
	if p := getProvenance(t, env.URL, reader, 6); p.AppendedBy != "token:"+ptok.ID || p.KeyID != "" || p.Signature != nil || p.ProducerTimestamp {
		t.Fatalf("unsigned event's provenance: %+v", p)
	}
}

// TestSignatureRefusals: every way a signed append can be wrong, each
// refused with its status and reason, logged, and writing nothing.
func TestSignatureRefusals(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	env := apitest.Start(t, apitest.Options{Log: logs})
	signer, vkey := producerKey(t, "billing.example.com")
	other, _ := producerKey(t, "billing.example.com") // same name, another key
	keyed, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}, SigningKey: vkey}, nil)
	plain, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
	const one = `{"kind":"other","source":"billing","payload":{"n":1},"timestamp":"2026-05-15T03:14:15Z"}`
	const two = `[{"kind":"other","source":"billing","payload":{"n":1}},{"kind":"other","source":"billing","payload":{"n":2}}]`
	good := signBody(t, signer, one, false)
	goodBatch := signBody(t, signer, two, true)
	// A batch whose second signature is of another event.
	otherSig := strings.Split(signBody(t, signer, one, false), ", ")[1]
	swapped := strings.Join(strings.Split(goodBatch, ", ")[:2], ", ") + ", " + otherSig
	cases := []struct {
		name   string
		token  string
		path   string
		body   string
		header []string // Audit-Signature values
		status int
		detail string
	}{
		{"missing header", keyed, "/events", one, nil, 401, "missing Audit-Signature header"},
		{"missing header, batch", keyed, "/events/batch", two, nil, 401, "missing Audit-Signature header"},
		{"malformed header", keyed, "/events", one, []string{"keyid=billing.example.com"}, 400, "malformed Audit-Signature header"},
		{"malformed signature", keyed, "/events", one, []string{"keyid=billing.example.com+01234567, sig=AAAA"}, 400, "malformed Audit-Signature header"},
		{"header twice", keyed, "/events", one, []string{good, good}, 400, "send the header once"},
		{"unknown keyid", keyed, "/events", one, []string{signBody(t, other, one, false)}, 401, "unknown keyid"},
		{"bad signature: another body", keyed, "/events", strings.Replace(one, `"n":1`, `"n":2`, 1), []string{good}, 401, "bad signature"},
		{"bad signature: timestamp dropped", keyed, "/events", `{"kind":"other","source":"billing","payload":{"n":1}}`, []string{good}, 401, "bad signature"},
		{"count mismatch", keyed, "/events/batch", two, []string{good}, 401, "count mismatch"},
		{"count mismatch, single", keyed, "/events", one, []string{goodBatch}, 401, "count mismatch"},
		{"bad signature in a batch item", keyed, "/events/batch", two, []string{swapped}, 401, "bad signature: item 1"},
		{"signature from a token without a key", plain, "/events", one, []string{good}, 401, "no producer key registered"},
		{"the same signed event twice in a batch", keyed, "/events/batch", "[" + one + "," + one + "]",
			[]string{signBody(t, signer, "["+one+","+one+"]", true)}, 409, "items 0 and 1 are the same signed event"},
	}
	for _, c := range cases {
		before := count(t, env.Store)
		req, err := http.NewRequest("POST", env.URL+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "application/json")
		for _, h := range c.header {
			req.Header.Add(prodsig.HeaderName, h)
		}
		res, err := apitest.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		r := resp{res.StatusCode, res.Header, body}
		if r.status != c.status || !strings.Contains(r.detail(), c.detail) || r.header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s; want %d with %q", c.name, r.status, r.body, c.status, c.detail)
		}
		if n := count(t, env.Store); n != before {
			t.Errorf("%s: the refused append wrote %d events", c.name, n-before)
		}
	}
	// Each refusal is logged with its reason.
	if n := strings.Count(logs.String(), "access denied"); n < len(cases) {
		t.Errorf("%d refusals logged, want %d:\n%s", n, len(cases), logs.String())
	}
	// The right signatures still append.
	if r := call(t, "POST", env.URL+"/events", keyed, one, prodsig.HeaderName, good); r.status != http.StatusCreated {
		t.Fatalf("signed append: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", env.URL+"/events/batch", keyed, two, prodsig.HeaderName, goodBatch); r.status != http.StatusCreated {
		t.Fatalf("signed batch: %d %s", r.status, r.body)
	}
}

// TestSignedReplay: a signed request is appended once. Sent again it is a
// 409 naming the event that holds its signature, unless it comes with the
// Idempotency-Key it was first sent with, which answers the stored event;
// 24 copies racing on their own connections append exactly one event.
func TestSignedReplay(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	signer, vkey := producerKey(t, "billing.example.com")
	secret, _ := mint(t, env.Store, auth.Spec{Roles: []string{"producer", "reader"}, Sources: []string{"billing"}, SigningKey: vkey}, nil)
	const body = `{"kind":"other","source":"billing","payload":{"order":7731},"timestamp":"2026-05-15T03:14:15.000001Z"}`
	sig := signBody(t, signer, body, false)

	first := call(t, "POST", env.URL+"/events", secret, body, prodsig.HeaderName, sig, "Idempotency-Key", "order-7731")
	if first.status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	again := call(t, "POST", env.URL+"/events", secret, body, prodsig.HeaderName, sig, "Idempotency-Key", "order-7731")
	if again.status != http.StatusOK || again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(first.body) {
		t.Fatalf("idempotent retry: %d %s, want 200 with %s", again.status, again.body, first.body)
	}
	for _, hdr := range [][]string{{prodsig.HeaderName, sig}, {prodsig.HeaderName, sig, "Idempotency-Key", "another-key"}} {
		r := call(t, "POST", env.URL+"/events", secret, body, hdr...)
		if r.status != http.StatusConflict || !strings.Contains(r.detail(), "already appended (event 1 ") {
			t.Fatalf("replay with %q: %d %s", hdr, r.status, r.body)
		}
	}
	if n := count(t, env.Store); n != 1 {
		t.Fatalf("replays wrote events: %d in the log", n)
	}

	const racing = `{"kind":"other","source":"billing","payload":{"order":7732},"timestamp":"2026-05-15T03:14:16Z"}`
	rsig := signBody(t, signer, racing, false)
	const n = 24
	created := raceCopies(t, n, func(int) int {
		return call(t, "POST", env.URL+"/events", secret, racing, prodsig.HeaderName, rsig).status
	})
	if created != 1 || count(t, env.Store) != 2 {
		t.Fatalf("%d of %d racing copies appended; log has %d events", created, n, count(t, env.Store))
	}
	if got := metric(t, env.URL, secret, "audit_stream_signed_replays_total"); got != n-1+2 {
		t.Fatalf("audit_stream_signed_replays_total = %v, want %d", got, n-1+2)
	}
}

// TestTimestampSkew: a producer timestamp further from the receive time
// than --timestamp-skew is flagged in the provenance and counted; one
// within it, or a server timestamp, is not.
func TestTimestampSkew(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{TimestampSkew: time.Hour}})
	now := time.Now().UTC()
	for _, ts := range []string{
		now.Add(-3 * time.Hour).Format(time.RFC3339), // 1: skewed, past
		now.Add(-30 * time.Minute).Format(time.RFC3339),
		now.Add(48 * time.Hour).Format(time.RFC3339), // 3: skewed, future
	} {
		if r := call(t, "POST", env.URL+"/events", "", `{"kind":"other","source":"billing","timestamp":"`+ts+`"}`); r.status != http.StatusCreated {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	if r := call(t, "POST", env.URL+"/events", "", ev); r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for id, want := range map[int64][2]bool{1: {true, true}, 2: {true, false}, 3: {true, true}, 4: {false, false}} {
		p := getProvenance(t, env.URL, "", id)
		if p.ProducerTimestamp != want[0] || p.TimestampSkewed != want[1] || p.AppendedBy != "open" {
			t.Errorf("event %d: %+v, want producer timestamp %v, skewed %v, appended by open", id, p, want[0], want[1])
		}
		received, err := event.ParseTimestamp(p.ReceivedAt)
		if err != nil || received.Sub(now) < -time.Minute || received.Sub(now) > time.Minute {
			t.Errorf("event %d: received_at %q is not the server's clock (%v)", id, p.ReceivedAt, now)
		}
	}
	if got := metric(t, env.URL, "", "audit_stream_timestamp_skewed_total"); got != 2 {
		t.Fatalf("audit_stream_timestamp_skewed_total = %v, want 2", got)
	}
}

// TestProvenanceEndpointsRefuse: the provenance routes' refusals, and the
// events before provenance was recorded.
func TestProvenanceEndpointsRefuse(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	// An event written without provenance, as an import or an older
	// binary left it.
	if _, err := env.Ledger.Append(context.Background(), []event.Request{{Kind: "other", Source: "s"}}); err != nil {
		t.Fatal(err)
	}
	if r := call(t, "POST", env.URL+"/events", "", ev); r.status != http.StatusCreated {
		t.Fatal(r.status)
	}
	huge := strings.Repeat("9", 400)
	for _, c := range []struct {
		path   string
		status int
		detail string
	}{
		{"/events/1/provenance", 404, "no provenance for event 1"},
		{"/events/3/provenance", 404, "no provenance for event 3"},
		{"/events/0/provenance", 404, "no event with id 0"},
		{"/events/" + huge + "/provenance", 404, "no event with id"},
		{"/events/abc/provenance", 422, "event id must be an integer"},
		{"/provenance?after=-1", 400, "after must be a non-negative integer"},
		{"/provenance?until=x", 400, "until must be a non-negative integer"},
		{"/provenance?after=5&until=2", 400, "until 2 is before after 5"},
		{"/provenance?afterr=1", 400, "unknown query parameter"},
		{"/provenance/seal?size=" + huge, 400, "size must be a non-negative integer"},
		{"/provenance/seal?size=12345", 404, "no provenance seal at tree size 12345"},
	} {
		r := call(t, "GET", env.URL+c.path, "", "")
		if r.status != c.status || !strings.Contains(r.detail(), c.detail) {
			t.Errorf("GET %s: %d %s; want %d with %q", c.path[:min(len(c.path), 60)], r.status, r.body, c.status, c.detail)
		}
	}
	// until beyond the head is the head.
	r := call(t, "GET", env.URL+"/provenance?until="+strconv.FormatInt(1<<62, 10), "", "")
	if r.status != 200 || strings.Count(string(r.body), "\n") != 1 {
		t.Fatalf("GET /provenance?until=huge: %d %s", r.status, r.body)
	}
	var rec provenance.Record
	if err := json.Unmarshal(r.body, &rec); err != nil || rec.FirstID != 2 || rec.AppendedBy != "open" {
		t.Fatalf("record: %+v, %v", rec, err)
	}
}

// metric reads one counter from /metrics.
func metric(t testing.TB, url, token, name string) float64 {
	t.Helper()
	r := call(t, "GET", url+"/metrics", token, "")
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// TestSignedReplayAcrossInstances: two instances sharing one PostgreSQL
// database receive copies of one signed request at the same moment: the
// signature lookup runs inside the append transaction, under the log's
// lock, so exactly one copy appends.
func TestSignedReplayAcrossInstances(t *testing.T) {
	t.Parallel()
	url := pgtest.Schema(t)
	_, key, err := checkpoint.GenerateKey("example.com/cluster")
	if err != nil {
		t.Fatal(err)
	}
	a := apitest.Start(t, apitest.Options{Store: url, Key: key, Origin: "example.com/cluster"})
	b := apitest.Start(t, apitest.Options{Store: url, Key: key, Origin: "example.com/cluster"})
	signer, vkey := producerKey(t, "billing.example.com")
	secret, _ := mint(t, a.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}, SigningKey: vkey}, nil)
	for round := range 5 {
		body := `{"kind":"other","source":"billing","payload":{"round":` + strconv.Itoa(round) + `},"timestamp":"2026-05-15T03:14:15Z"}`
		sig := signBody(t, signer, body, false)
		const n = 16
		created := raceCopies(t, n, func(i int) int {
			env := a
			if i%2 == 1 {
				env = b
			}
			return call(t, "POST", env.URL+"/events", secret, body, prodsig.HeaderName, sig).status
		})
		if created != 1 || count(t, a.Store) != int64(round+1) {
			t.Fatalf("round %d: %d of %d copies appended; the log has %d events", round, created, n, count(t, a.Store))
		}
	}
}

// TestAdminTokenSigningKey: the admin API registers a producer key on a
// new token and shows it; a malformed or private key is refused.
func TestAdminTokenSigningKey(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	admin, _ := mint(t, env.Store, auth.Spec{Roles: []string{"admin"}}, nil)
	signer, vkey := producerKey(t, "billing.example.com")
	body, _ := json.Marshal(map[string]any{"roles": []string{"producer"}, "sources": []string{"billing"}, "signing_key": vkey})
	r := call(t, "POST", env.URL+"/admin/tokens", admin, string(body), "Content-Type", "application/json")
	var created struct {
		Token      string `json:"token"`
		SigningKey string `json:"signing_key"`
	}
	if r.status != http.StatusCreated || json.Unmarshal(r.body, &created) != nil || created.SigningKey != vkey {
		t.Fatalf("POST /admin/tokens with a signing key: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", env.URL+"/events", created.Token, ev); r.status != http.StatusUnauthorized {
		t.Fatalf("unsigned append with the new token: %d %s", r.status, r.body)
	}
	if r := call(t, "POST", env.URL+"/events", created.Token, ev, prodsig.HeaderName, signBody(t, signer, ev, false)); r.status != http.StatusCreated {
		t.Fatalf("signed append with the new token: %d %s", r.status, r.body)
	}
	skey := strings.Replace(vkey, "billing.example.com", "PRIVATE+KEY+billing.example.com", 1)
	for _, bad := range []string{"billing.example.com", skey, vkey + "x"} {
		body, _ := json.Marshal(map[string]any{"roles": []string{"producer"}, "sources": []string{"billing"}, "signing_key": bad})
		if r := call(t, "POST", env.URL+"/admin/tokens", admin, string(body), "Content-Type", "application/json"); r.status != http.StatusUnprocessableEntity || !strings.Contains(r.detail(), "producer key") {
			t.Errorf("signing_key %q: %d %s", bad, r.status, r.body)
		}
	}
}

// raceCopies sends n copies of one signed append at once, post(i) sending
// copy i and returning its status. Each copy must be appended (201) or
// refused as a replay (409); it returns how many were appended.
func raceCopies(t *testing.T, n int, post func(i int) int) (created int) {
	t.Helper()
	var wg sync.WaitGroup
	start := make(chan struct{})
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = post(i)
		}()
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		switch c {
		case http.StatusCreated:
			created++
		case http.StatusConflict:
		default:
			t.Fatalf("racing copy %d: %d", i, c)
		}
	}
	return created
}
