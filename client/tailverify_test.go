package client_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
)

// streamProxy is a real reverse proxy between a verifying tail and the real
// server: every request goes through it, and /stream's frames pass through
// rewrite, which may change, drop or add frames — what a compromised
// server or anything on the path can do to one reader.
type streamProxy struct {
	*httptest.Server
	// rewrite gets each frame of a stream connection (its lines) and
	// returns the frames to send on; nil passes every frame.
	rewrite func(lines []string) [][]string
	// cutAfter ends each stream connection after that many frames, so the
	// tail has to resume (0: never).
	cutAfter int
	streams  atomic.Int64
}

func newStreamProxy(t *testing.T, target string) *streamProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &streamProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			rp.ServeHTTP(w, r)
			return
		}
		p.streams.Add(1)
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, target+"/stream?"+r.URL.RawQuery, nil)
		req.Header = r.Header.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		if resp.StatusCode != http.StatusOK {
			io.Copy(w, resp.Body)
			return
		}
		br := bufio.NewReaderSize(resp.Body, 1<<20)
		var lines []string
		frames := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			if line != "" {
				lines = append(lines, line)
				continue
			}
			out := [][]string{lines}
			if p.rewrite != nil && len(lines) > 0 && !strings.HasPrefix(lines[0], "retry:") && !strings.HasPrefix(lines[0], ":") {
				out = p.rewrite(lines)
			}
			for _, f := range out {
				io.WriteString(w, strings.Join(f, "\n")+"\n\n")
			}
			w.(http.Flusher).Flush()
			lines = nil
			if frames++; p.cutAfter > 0 && frames >= p.cutAfter {
				return
			}
		}
	}))
	t.Cleanup(p.Close)
	return p
}

// frameEvent parses an event frame; ok is false for any other frame.
func frameEvent(t testing.TB, lines []string) (event.Event, bool) {
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "id: ") {
		return event.Event{}, false
	}
	e, err := event.ParseStored([]byte(strings.TrimPrefix(lines[2], "data: ")))
	if err != nil {
		t.Errorf("proxy: %v", err)
	}
	return e, true
}

func eventLines(e *event.Event) []string {
	return []string{"event: " + e.Kind, "id: " + strconv.FormatInt(e.ID, 10), "data: " + string(e.AppendJSON(nil))}
}

// checkpointFrame is the data of a checkpoint frame.
type checkpointFrame struct {
	TreeSize int64    `json:"tree_size"`
	From     int64    `json:"from"`
	Proof    []string `json:"proof"`
	Note     string   `json:"checkpoint"`
}

func frameCheckpoint(lines []string) (checkpointFrame, bool) {
	var f checkpointFrame
	if len(lines) != 2 || lines[0] != "event: checkpoint" {
		return f, false
	}
	json.Unmarshal([]byte(strings.TrimPrefix(lines[1], "data: ")), &f)
	return f, true
}

func checkpointLines(f checkpointFrame) []string {
	if f.Proof == nil {
		f.Proof = []string{}
	}
	b, _ := json.Marshal(f)
	return []string{"event: checkpoint", "data: " + string(b)}
}

// forge signs a checkpoint of size n over a tree that is not the log's,
// with the log's own key: what a server showing one reader a fork does.
func forge(t testing.TB, key *checkpoint.Key, origin string, n int64) string {
	root := sha256.Sum256([]byte("another history " + strconv.FormatInt(n, 10)))
	signed, err := verify.SignCheckpoint(verify.Checkpoint{Origin: origin, Size: n, Hash: root}, key.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func appendEvents(t testing.TB, c *client.Client, n int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(200, n-done)
		rs := make([]client.AppendRequest, k)
		for i := range rs {
			rs[i] = client.AppendRequest{Kind: []string{"request_denied", "other", "incident_filed"}[(done+i)%3], Source: "src-" + strconv.Itoa((done+i)%4), Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, done+i))}
		}
		if _, err := c.AppendBatch(context.Background(), rs, client.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		done += k
	}
}

// verifiedTail runs a verifying tail and keeps what it yields.
type verifiedTail struct {
	mu          sync.Mutex
	events      []event.Event
	checkpoints []int64
	retries     []error
	err         error
	done        chan struct{}
}

func runVerified(ctx context.Context, c *client.Client, opt client.TailOptions, v client.TailVerify) *verifiedTail {
	vt := &verifiedTail{done: make(chan struct{})}
	v.OnCheckpoint = func(cp verify.Checkpoint, _ []byte) {
		vt.mu.Lock()
		vt.checkpoints = append(vt.checkpoints, cp.Size)
		vt.mu.Unlock()
	}
	opt.Verify = &v
	opt.MinBackoff, opt.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	opt.OnRetry = func(err error, _ time.Duration) {
		vt.mu.Lock()
		vt.retries = append(vt.retries, err)
		vt.mu.Unlock()
	}
	go func() {
		defer close(vt.done)
		for ev, err := range c.Tail(ctx, opt) {
			vt.mu.Lock()
			if err != nil {
				vt.err = err
			} else {
				vt.events = append(vt.events, ev)
			}
			vt.mu.Unlock()
		}
	}()
	return vt
}

// wait waits until the tail ends or has yielded up to event last.
func (vt *verifiedTail) wait(t testing.TB, last int64) error {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		vt.mu.Lock()
		n, err := len(vt.events), vt.err
		reached := n > 0 && vt.events[n-1].ID >= last
		vt.mu.Unlock()
		if err != nil || reached {
			return err
		}
		select {
		case <-vt.done:
			return vt.err
		case <-deadline:
			t.Fatalf("the tail yielded %d events, not up to %d", n, last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestVerifiedTailHonest(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	c, _ := client.New(env.URL)
	appendEvents(t, c, 1500)
	p := newStreamProxy(t, env.URL)
	p.cutAfter = 700 // frames per connection: every tail resumes several times
	pc, _ := client.New(p.URL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	key := client.TailVerify{LogKeys: []string{env.Key.VerifierKey}}

	zero, mid := int64(0), int64(1234)
	whole := runVerified(ctx, pc, client.TailOptions{After: &zero}, key)
	fromMid := runVerified(ctx, pc, client.TailOptions{After: &mid}, key)
	filtered := runVerified(ctx, pc, client.TailOptions{After: &mid, Kinds: []string{"other"}, Sources: []string{"src-1", "src-2"}}, key)
	// More history appended while they read: live checkpoints, one
	// every batch or so (the test checkpointer signs every 10 ms).
	for range 15 {
		appendEvents(t, c, 100)
		time.Sleep(15 * time.Millisecond)
	}
	const last = 3000
	for _, run := range []struct {
		name  string
		vt    *verifiedTail
		first int64
		keep  func(e event.Event) bool
	}{
		{"from 0", whole, 1, nil},
		{"from 1234", fromMid, 1235, nil},
		{"filtered", filtered, 1235, func(e event.Event) bool {
			return e.Kind == "other" && (e.Source == "src-1" || e.Source == "src-2")
		}},
	} {
		var want []int64
		for id := run.first; id <= last; id++ {
			e, err := env.Store.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if run.keep == nil || run.keep(e) {
				want = append(want, id)
			}
		}
		if err := run.vt.wait(t, want[len(want)-1]); err != nil {
			t.Fatalf("%s: %v", run.name, err)
		}
		vt := run.vt
		vt.mu.Lock()
		var ids []int64
		for _, e := range vt.events {
			ids = append(ids, e.ID)
		}
		verified, retries := slices.Clone(vt.checkpoints), len(vt.retries)
		vt.mu.Unlock()
		if !slices.Equal(ids, want) {
			t.Fatalf("%s: yielded %d events (%v…), want %d: every one exactly once, in order", run.name, len(ids), ids[:min(5, len(ids))], len(want))
		}
		if len(verified) < 5 || retries < 2 {
			t.Fatalf("%s: %d checkpoints verified, %d reconnects; want several of each", run.name, len(verified), retries)
		}
		t.Logf("%s: %d events over %d checkpoints, %d reconnects", run.name, len(ids), len(verified), retries)
	}
}

func TestVerifiedTailCatchesTampering(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	c, _ := client.New(env.URL)
	appendEvents(t, c, 600)
	head := env.Ledger.Head().ID
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	if _, _, err := env.Checkpoints.Wait(wctx, head); err != nil {
		t.Fatal(err)
	}
	origin := env.Checkpoints.Origin()
	otherKey, err := checkpoint.ParseKey(mustSkey(t, origin))
	if err != nil {
		t.Fatal(err)
	}
	_, witnessKey, _ := witness.GenerateKey("witness.example/w1")

	type testCase struct {
		name string
		// live: the tail starts at the head and events are appended
		// while it reads; else it replays the history from 0.
		live    bool
		grow    bool // events are appended while it reads (live does too)
		rewrite func() func([]string) [][]string
		opt     client.TailVerify
		check   client.Check
		id      int64 // the event the error must name; 0: any
	}
	cases := []testCase{
		{name: "an event's payload rewritten", check: client.CheckHash, id: 300, rewrite: func() func([]string) [][]string {
			return func(l []string) [][]string {
				if e, ok := frameEvent(t, l); ok && e.ID == 300 {
					e.Payload = json.RawMessage(`{"i":"nothing to see"}`)
					return [][]string{eventLines(&e)}
				}
				return [][]string{l}
			}
		}},
		{name: "an event rewritten and the chain recomputed", check: client.CheckTree, id: 300, rewrite: func() func([]string) [][]string {
			var prev event.Hash
			return func(l []string) [][]string {
				e, ok := frameEvent(t, l)
				if !ok || e.ID < 300 {
					return [][]string{l}
				}
				if e.ID == 300 {
					e.Payload = json.RawMessage(`{"i":"nothing to see"}`)
				} else {
					e.PrevHash = prev
				}
				e.Hash, _ = e.ComputeHash(nil)
				prev = e.Hash
				return [][]string{eventLines(&e)}
			}
		}},
		{name: "an event dropped", check: client.CheckSequence, id: 300, rewrite: func() func([]string) [][]string {
			return func(l []string) [][]string {
				if e, ok := frameEvent(t, l); ok && e.ID == 300 {
					return nil
				}
				return [][]string{l}
			}
		}},
		{name: "the last event before a checkpoint withheld", live: true, check: client.CheckSequence, rewrite: func() func([]string) [][]string {
			// Hold each event frame until the next frame: when that is a
			// live checkpoint covering it, drop it.
			var held []string
			done := false
			return func(l []string) [][]string {
				var out [][]string
				if f, ok := frameCheckpoint(l); ok && !done && held != nil && f.TreeSize > head {
					if e, _ := frameEvent(t, held); e.ID == f.TreeSize {
						held, done = nil, true
					}
				}
				if held != nil {
					out = append(out, held)
					held = nil
				}
				if _, ok := frameEvent(t, l); ok && !done {
					held = l
					return out
				}
				return append(out, l)
			}
		}},
		{name: "a forked checkpoint spliced in", live: true, check: client.CheckConsistency, rewrite: func() func([]string) [][]string {
			// After a live checkpoint that covers every event sent
			// (so the reader's verified tree is its tree), a forged
			// one for the next event, from it.
			var anchor, sent int64
			done := false
			return func(l []string) [][]string {
				if f, ok := frameCheckpoint(l); ok {
					if f.TreeSize == sent {
						anchor = f.TreeSize
					}
					return [][]string{l}
				}
				e, ok := frameEvent(t, l)
				if ok {
					sent = e.ID
				}
				if ok && !done && anchor > head && e.ID > anchor {
					done = true
					fork := checkpointFrame{TreeSize: e.ID, From: anchor, Note: forge(t, env.Key, origin, e.ID)}
					return [][]string{l, checkpointLines(fork)}
				}
				return [][]string{l}
			}
		}},
		{name: "a forked checkpoint first", check: client.CheckConsistency, rewrite: func() func([]string) [][]string {
			// The reader's first checkpoint is the fork: nothing to
			// compare it with yet, so it holds the events against it; the
			// real one for the same size then contradicts it.
			first := true
			return func(l []string) [][]string {
				if f, ok := frameCheckpoint(l); ok && first {
					first = false
					f.Note = forge(t, env.Key, origin, f.TreeSize)
					return [][]string{checkpointLines(f)}
				}
				return [][]string{l}
			}
		}},
		{name: "a forked checkpoint first, then a larger one", grow: true, check: client.CheckConsistency, rewrite: func() func([]string) [][]string {
			// The fork comes while the reader is behind it, so it is
			// taken on its word for now; the real checkpoint of that
			// size never comes (dropped), a larger one does, and the
			// events it vouches for form another tree at the fork's size.
			var forked int64
			return func(l []string) [][]string {
				f, ok := frameCheckpoint(l)
				switch {
				case !ok:
					return [][]string{l}
				case forked == 0:
					forked = f.TreeSize
					f.Note = forge(t, env.Key, origin, f.TreeSize)
					return [][]string{checkpointLines(f)}
				case f.TreeSize == forked:
					return nil
				}
				return [][]string{l}
			}
		}},
		{name: "a fork of the replayed history", check: client.CheckTree, rewrite: func() func([]string) [][]string {
			// Every checkpoint replaced by a fork of the same size: the
			// events do not fold into its root.
			return func(l []string) [][]string {
				if f, ok := frameCheckpoint(l); ok {
					f.Note, f.Proof = forge(t, env.Key, origin, f.TreeSize), nil
					if f.From != 0 && f.From != f.TreeSize {
						f.From = 0
					}
					return [][]string{checkpointLines(f)}
				}
				return [][]string{l}
			}
		}},
		{name: "checkpoints signed by another key", check: client.CheckSignature, rewrite: func() func([]string) [][]string {
			return func(l []string) [][]string {
				if f, ok := frameCheckpoint(l); ok {
					cp, _ := verify.ParseCheckpoint([]byte(strings.SplitN(f.Note, "\n\n", 2)[0] + "\n"))
					signed, _ := verify.SignCheckpoint(cp, otherKey.Signer)
					f.Note = string(signed)
					return [][]string{checkpointLines(f)}
				}
				return [][]string{l}
			}
		}},
		{name: "no witness cosigned", check: client.CheckQuorum, opt: client.TailVerify{WitnessKeys: []string{witnessKey}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newStreamProxy(t, env.URL)
			if tc.rewrite != nil {
				p.rewrite = tc.rewrite()
			}
			pc, _ := client.New(p.URL)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			after := int64(0)
			if tc.live {
				after = head
			}
			opt := tc.opt
			opt.LogKeys = []string{env.Key.VerifierKey}
			vt := runVerified(ctx, pc, client.TailOptions{After: &after}, opt)
			if tc.live || tc.grow {
				go func() {
					rs := make([]client.AppendRequest, 7)
					for i := range rs {
						rs[i] = client.AppendRequest{Kind: "other", Source: "live", Payload: json.RawMessage(`{}`)}
					}
					for ctx.Err() == nil {
						if _, err := c.AppendBatch(ctx, rs, client.AppendOptions{}); err != nil && ctx.Err() == nil {
							t.Errorf("append: %v", err)
							return
						}
						time.Sleep(20 * time.Millisecond)
					}
				}()
			}
			err := vt.wait(t, 1<<62)
			var ve *client.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("the tail ended with %v, want a *client.VerifyError", err)
			}
			if ve.Check != tc.check || (tc.id != 0 && ve.EventID != tc.id) {
				t.Fatalf("caught %v (check %q, event %d), want check %q at event %d", err, ve.Check, ve.EventID, tc.check, tc.id)
			}
			vt.mu.Lock()
			defer vt.mu.Unlock()
			// Nothing from the tampered part was yielded as verified.
			for _, e := range vt.events {
				if tc.id != 0 && e.ID >= tc.id {
					t.Fatalf("event %d was yielded", e.ID)
				}
				if got, _ := env.Store.Get(context.Background(), e.ID); got.Hash != e.Hash {
					t.Fatalf("event %d was yielded as another than the log's", e.ID)
				}
			}
			t.Logf("%v (%d events yielded before)", err, len(vt.events))
		})
	}
}

// mustSkey is a signing key of another party that claims the log's name.
func mustSkey(t testing.TB, name string) string {
	skey, _, err := note.GenerateKey(nil, name)
	if err != nil {
		t.Fatal(err)
	}
	return skey
}
