package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// cpChecker reads a /stream?checkpoints=true as a verifying client does,
// with nothing but the verify package, and checks every frame: events hash
// and chain, checkpoint frames carry no id, verify under the log's key,
// and their proofs tie what was received to the signed tree.
type cpChecker struct {
	t      testing.TB
	key    string
	start  int64
	hashes []event.Hash // of events start+1, start+2, ...
	prev   event.Hash
	anchor int64 // the size the previous frame's tree reached
	frames []cpFrame
}

type cpFrame struct {
	TreeSize int64    `json:"tree_size"`
	From     int64    `json:"from"`
	Proof    []string `json:"proof"`
	Note     string   `json:"checkpoint"`
	cursor   int64    // events received before it
}

func (c *cpChecker) cursor() int64 { return c.start + int64(len(c.hashes)) }

// root is the root of the first n events, n ≥ start: the events
// received on top of the server's leaves before the start (which the
// proof checks tie to the signed tree).
func (c *cpChecker) root(n int64) tlog.Hash {
	c.t.Helper()
	var tr verify.Tree
	for id := int64(1); id <= n; id++ {
		var h event.Hash
		if id <= c.start {
			h = leafOf(id)
		} else {
			h = c.hashes[id-c.start-1]
		}
		if err := tr.Add(h); err != nil {
			c.t.Fatal(err)
		}
	}
	return tr.Root()
}

// leafOf is the hash of an event before a checker's start, from the store.
var leafOf func(id int64) event.Hash

// frame checks one frame; it returns the checkpoint frame, if it was one.
func (c *cpChecker) frame(lines []string) *cpFrame {
	c.t.Helper()
	if len(lines) == 2 && lines[0] == "event: checkpoint" && strings.HasPrefix(lines[1], "data: ") {
		var f cpFrame
		if err := json.Unmarshal([]byte(lines[1][6:]), &f); err != nil {
			c.t.Fatalf("checkpoint frame %q: %v", lines[1], err)
		}
		f.cursor = c.cursor()
		c.checkpoint(&f)
		c.frames = append(c.frames, f)
		return &f
	}
	for _, l := range lines {
		if l == "event: checkpoint" {
			c.t.Fatalf("a checkpoint frame with other lines (an id?): %q", lines)
		}
	}
	id, _, data := eventFrame(c.t, lines)
	e, err := event.ParseStored([]byte(data))
	if err != nil {
		c.t.Fatal(err)
	}
	if id != c.cursor()+1 || e.ID != id {
		c.t.Fatalf("event %d (frame id %d) after %d", e.ID, id, c.cursor())
	}
	if h, _ := e.ComputeHash(nil); h != e.Hash {
		c.t.Fatalf("event %d: hash mismatch", id)
	}
	if c.cursor() > 0 && (len(c.hashes) > 0 || c.prev != event.Hash{}) && e.PrevHash != c.prev {
		c.t.Fatalf("event %d: prev_hash mismatch", id)
	}
	c.prev = e.Hash
	c.hashes = append(c.hashes, e.Hash)
	return nil
}

func (c *cpChecker) checkpoint(f *cpFrame) {
	c.t.Helper()
	v, err := verify.ParseVerifierKey(c.key)
	if err != nil {
		c.t.Fatal(err)
	}
	cp, err := verify.OpenCheckpoint([]byte(f.Note), v, "")
	if err != nil {
		c.t.Fatalf("checkpoint frame %d: %v", f.TreeSize, err)
	}
	if cp.Size != f.TreeSize {
		c.t.Fatalf("frame says tree_size %d, its note %d", f.TreeSize, cp.Size)
	}
	cur := c.cursor()
	// The rule of streamcheckpoints.go: from where the previous frame
	// left the subscriber, or where it has reached when it is behind.
	switch {
	case cur >= cp.Size:
		if f.From != c.anchor {
			c.t.Fatalf("frame %d after %d events: from %d, want %d (the previous frame's tree)", cp.Size, cur, f.From, c.anchor)
		}
		c.anchor = cp.Size
	default:
		if f.From != cur {
			c.t.Fatalf("frame %d while behind at %d: from %d, want %d", cp.Size, cur, f.From, cur)
		}
		c.anchor = cur
	}
	proof := make(tlog.TreeProof, len(f.Proof))
	for i, p := range f.Proof {
		h, err := event.ParseHash(p)
		if err != nil {
			c.t.Fatal(err)
		}
		proof[i] = tlog.Hash(h)
	}
	if f.From == 0 || f.From == cp.Size {
		if len(proof) != 0 {
			c.t.Fatalf("frame %d from %d has a %d-hash proof, want none", cp.Size, f.From, len(proof))
		}
	} else if err := tlog.CheckTree(proof, cp.Size, cp.Hash, f.From, c.root(f.From)); err != nil {
		c.t.Fatalf("frame %d: consistency from %d: %v", cp.Size, f.From, err)
	}
	if cp.Size <= cur && c.root(cp.Size) != cp.Hash {
		c.t.Fatalf("frame %d: the events received do not fold into its root", cp.Size)
	}
}

func appendBatch(t testing.TB, base string, n int) {
	t.Helper()
	for done := 0; done < n; {
		k := min(1000, n-done)
		var b strings.Builder
		b.WriteByte('[')
		for i := range k {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"kind":"other","source":"s","payload":{"i":%d}}`, done+i)
		}
		b.WriteByte(']')
		r := call(t, "POST", base+"/events/batch", "", b.String(), "Content-Type", "application/json")
		if r.status != http.StatusCreated {
			t.Fatalf("batch: %d %s", r.status, r.body)
		}
		done += k
	}
}

func waitCheckpoint(t testing.TB, env *apitest.Env, size int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, _, err := env.Checkpoints.Wait(ctx, size); err != nil {
		t.Fatalf("no checkpoint of %d events: %v", size, err)
	}
}

// readUntil reads frames until done says so.
func (c *cpChecker) readUntil(fr *frameReader, done func(f *cpFrame) bool) {
	c.t.Helper()
	for {
		lines, err := fr.next()
		if err != nil {
			c.t.Fatalf("after %d events: %v", c.cursor(), err)
		}
		if len(lines) == 1 && strings.HasPrefix(lines[0], ":") {
			continue
		}
		if done(c.frame(lines)) {
			return
		}
	}
}

func TestStreamCheckpointFrames(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	var before []event.Hash
	leafOf = func(id int64) event.Hash {
		for int64(len(before)) < id {
			e, err := env.Store.Get(context.Background(), int64(len(before))+1)
			if err != nil {
				t.Fatal(err)
			}
			before = append(before, e.Hash)
		}
		return before[id-1]
	}
	// History beyond a catch-up stride, covered by a checkpoint before
	// anyone subscribes: a replay from 0 is behind it all the way.
	appendBatch(t, env.URL, 10000)
	waitCheckpoint(t, env, 10000)

	t.Run("replay from 0, then live", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp := rawStream(t, ctx, env.URL, "?after=0&checkpoints=true", nil)
		defer resp.Body.Close()
		fr := newFrameReader(resp.Body)
		if n := preamble(t, fr, 2000); n != 0 {
			t.Fatalf("preamble at %d", n)
		}
		c := &cpChecker{t: t, key: env.Key.VerifierKey}
		c.readUntil(fr, func(f *cpFrame) bool { return f != nil && f.TreeSize >= 10000 && f.cursor >= f.TreeSize })
		// Behind: the first frame at once, from 0; then one per stride.
		var behind []int64
		for _, f := range c.frames {
			if f.cursor < f.TreeSize {
				behind = append(behind, f.From)
			}
		}
		if len(behind) < 3 || behind[0] != 0 {
			t.Fatalf("frames while behind from %v, want one at 0 and one every %d events", behind, 4096)
		}
		// Live: every new checkpoint, from the previous one.
		for i := range 5 {
			appendBatch(t, env.URL, 100+i)
			head := env.Ledger.Head().ID
			c.readUntil(fr, func(f *cpFrame) bool { return f != nil && f.TreeSize == head })
		}
		last := c.frames[len(c.frames)-1]
		if last.From == 0 || last.From >= last.TreeSize || len(last.Proof) == 0 {
			t.Fatalf("a live frame %+v: want a proof from the previous checkpoint", last)
		}
	})

	t.Run("resume mid-log", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		resp := rawStream(t, ctx, env.URL, "?checkpoints=true", http.Header{"Last-Event-Id": {"777"}})
		defer resp.Body.Close()
		fr := newFrameReader(resp.Body)
		if n := preamble(t, fr, 2000); n != 777 {
			t.Fatalf("preamble at %d", n)
		}
		c := &cpChecker{t: t, key: env.Key.VerifierKey, start: 777, anchor: 777, prev: leafOf(777)}
		// Before any event: the latest checkpoint, from the start.
		lines, err := fr.next()
		if err != nil {
			t.Fatal(err)
		}
		f := c.frame(lines)
		if f == nil || f.From != 777 || f.cursor != 777 {
			t.Fatalf("first frame after a resume at 777: %q", lines)
		}
		head := env.Ledger.Head().ID
		c.readUntil(fr, func(f *cpFrame) bool { return f != nil && f.TreeSize == head && f.cursor >= head })
	})

	t.Run("off by default", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		head := env.Ledger.Head().ID
		resp := rawStream(t, ctx, env.URL, fmt.Sprintf("?after=%d", head-20), nil)
		defer resp.Body.Close()
		fr := newFrameReader(resp.Body)
		preamble(t, fr, 2000)
		appendBatch(t, env.URL, 5)
		waitCheckpoint(t, env, head+5)
		for range 25 {
			lines, err := fr.next()
			if err != nil {
				t.Fatal(err)
			}
			eventFrame(t, lines) // fails on anything else
		}
	})
}

func TestStreamCheckpointsRejects(t *testing.T) {
	env := apitest.Start(t, apitest.Options{})
	for _, tc := range []struct{ query, detail string }{
		{"?checkpoints=yes", `checkpoints must be true or false, got "yes"`},
		{"?checkpoints=1", `checkpoints must be true or false, got "1"`},
		{"?checkpoints=", `checkpoints must be true or false, got ""`},
		{"?checkpoints=TRUE", `checkpoints must be true or false, got "TRUE"`},
		{"?checkpoints=true&checkpoints=true", "checkpoints is given 2 times"},
		{"?checkpoint=true", `unknown query parameter "checkpoint" (did you mean "checkpoints"?)`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			r := call(t, "GET", env.URL+"/stream"+tc.query, "", "")
			if r.status != http.StatusBadRequest || !strings.Contains(r.detail(), tc.detail) {
				t.Fatalf("%d %q, want 400 with %q", r.status, r.body, tc.detail)
			}
		})
	}
}
