package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var long = flag.Bool("long", false, "run the crash loop 20 times instead of 5")

// keyedRequest is an append sent with an Idempotency-Key. acks is nil until
// an answer came back; then a retry with the same key must replay them.
type keyedRequest struct {
	key, path string
	body      []byte
	acks      []ack
}

// crashLoop is what the clients know across kills: every acknowledged
// event with its hash, every keyed request, the latest signed checkpoint
// they have seen.
type crashLoop struct {
	mu       sync.Mutex
	acked    map[int64]string
	keyed    []*keyedRequest // acknowledged
	pending  []*keyedRequest // sent, answer lost in a crash
	cpNote   []byte
	cp       verify.Checkpoint
	replayed int // pending retries that turned out to be committed
	retried  int

	vkey     string
	verifier note.Verifier
}

// TestCrashLoop hammers the real binary with single appends, batches and
// keyed (Idempotency-Key) appends, SIGKILLs it at a random moment, restarts
// it, and checks after every restart: every acknowledged event is there
// with its acknowledged hash; the chain verifies and the tree matches the
// signed checkpoint (audit-stream verify --url with the key pinned at the
// first start); the checkpoint is not older than any the clients saw
// before the kill, and is consistent with it; retries of requests whose
// answer was lost commit once; replays of acknowledged keys return the
// original events.
func TestCrashLoop(t *testing.T) {
	t.Parallel()
	iterations := 5
	if *long {
		iterations = 20
	}
	dir := t.TempDir()
	c := &crashLoop{acked: map[int64]string{}}
	for it := 0; ; it++ {
		p := e2e.Start(t, dir, "", "--checkpoint-interval", "20ms")
		if it == 0 {
			c.vkey = strings.TrimSpace(string(get(t, p.URL+"/checkpoint/key")))
			v, err := verify.ParseVerifierKey(c.vkey)
			if err != nil {
				t.Fatal(err)
			}
			c.verifier = v
		} else {
			c.check(t, p, it == iterations)
		}
		if it == iterations {
			break
		}
		c.retryPending(t, p)
		c.hammer(t, p, it)
	}
	if len(c.acked) == 0 || len(c.keyed) == 0 || c.cp.Size == 0 {
		t.Fatalf("the loop proved nothing: %d events and %d keyed requests acknowledged, checkpoint %d", len(c.acked), len(c.keyed), c.cp.Size)
	}
	t.Logf("%d kills: %d events acknowledged, %d keyed requests (%d retried after a lost answer, %d of them already committed), checkpoint %d",
		iterations, len(c.acked), len(c.keyed), c.retried, c.replayed, c.cp.Size)
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v %s", url, resp.StatusCode, err, b)
	}
	return b
}

// post sends an append; ok is false when there was no complete answer
// (the server died): the append is then unacknowledged.
func post(url string, body []byte, key string) (status int, replayed bool, acks []ack, ok bool) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, false, nil, false
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, false, nil, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, nil, false
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, false, nil, true
	}
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		err = json.Unmarshal(b, &acks)
	} else {
		var a ack
		err = json.Unmarshal(b, &a)
		acks = []ack{a}
	}
	if err != nil {
		return 0, false, nil, false // cut off mid-body
	}
	return resp.StatusCode, resp.Header.Get("Idempotent-Replayed") == "true", acks, true
}

func singleBody(src string, i int) []byte {
	return fmt.Appendf(nil, `{"kind":"other","source":%q,"payload":{"i":%d}}`, src, i)
}

func batchBody(src string, i, n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for j := range n {
		if j > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"kind":"other","source":%q,"payload":{"i":%d,"j":%d}}`, src, i, j)
	}
	b.WriteByte(']')
	return b.Bytes()
}

func (c *crashLoop) record(t *testing.T, acks []ack) {
	for _, a := range acks {
		if prev, dup := c.acked[a.EventID]; dup && prev != a.Hash {
			t.Errorf("event %d acknowledged with hash %s, earlier with %s", a.EventID, a.Hash, prev)
		}
		c.acked[a.EventID] = a.Hash
	}
}

// hammer runs producers of every kind until a SIGKILL at a random moment,
// while a watcher keeps the latest checkpoint the server serves.
func (c *crashLoop) hammer(t *testing.T, p *e2e.Process, it int) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := fmt.Sprintf("it%d-w%d", it, w)
			for i := 0; !stopped(); i++ {
				var kr *keyedRequest
				var status int
				var acks []ack
				var ok bool
				switch {
				case w < 4: // singles
					status, _, acks, ok = post(p.URL+"/events", singleBody(src, i), "")
				case w < 6: // batches
					status, _, acks, ok = post(p.URL+"/events/batch", batchBody(src, i, 20), "")
				default: // keyed, singles and batches in turn
					kr = &keyedRequest{key: fmt.Sprintf("%s-%d", src, i), path: "/events", body: singleBody(src, i)}
					if i%2 == 1 {
						kr.path, kr.body = "/events/batch", batchBody(src, i, 5)
					}
					status, _, acks, ok = post(p.URL+kr.path, kr.body, kr.key)
				}
				c.mu.Lock()
				switch {
				case !ok && kr != nil:
					c.pending = append(c.pending, kr)
				case ok && status/100 == 2:
					c.record(t, acks)
					if kr != nil {
						kr.acks = acks
						c.keyed = append(c.keyed, kr)
					}
				case ok:
					t.Errorf("append answered %d", status)
				}
				c.mu.Unlock()
				if !ok {
					return // the server is gone
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stopped() {
			resp, err := client.Get(p.URL + "/checkpoint")
			if err != nil {
				return
			}
			signed, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				continue
			}
			cp, err := verify.OpenCheckpoint(signed, c.verifier, "")
			if err != nil {
				t.Errorf("served checkpoint: %v", err)
				return
			}
			c.mu.Lock()
			if cp.Size < c.cp.Size {
				t.Errorf("checkpoint went backwards while serving: %d after %d", cp.Size, c.cp.Size)
			}
			if cp.Size > c.cp.Size {
				c.cp, c.cpNote = cp, signed
			}
			c.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(time.Duration(150+rand.IntN(450)) * time.Millisecond)
	p.Kill()
	close(stop)
	wg.Wait()
}

// retryPending resends every keyed request whose answer a crash cut off,
// as a producer would: it commits now (201) or was committed before the
// crash (200, replayed), never twice.
func (c *crashLoop) retryPending(t *testing.T, p *e2e.Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, kr := range c.pending {
		status, replayed, acks, ok := post(p.URL+kr.path, kr.body, kr.key)
		if !ok || (status != 201 && status != 200) || replayed != (status == 200) {
			t.Fatalf("retry of key %s: status %d replayed %v ok %v", kr.key, status, replayed, ok)
		}
		c.retried++
		if replayed {
			c.replayed++
		}
		c.record(t, acks)
		kr.acks = acks
		c.keyed = append(c.keyed, kr)
	}
	c.pending = nil
}

// check runs after a restart.
func (c *crashLoop) check(t *testing.T, p *e2e.Process, final bool) {
	t.Helper()
	// Every acknowledged event, with its acknowledged hash.
	resp, err := client.Get(p.URL + "/export")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var a ack
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("export line %q: %v", sc.Bytes(), err)
		}
		stored[a.EventID] = a.Hash
	}
	resp.Body.Close()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for id, h := range c.acked {
		if stored[id] != h {
			t.Fatalf("acknowledged event %d: stored hash %q, acknowledged %q", id, stored[id], h)
		}
	}

	// The chain and the tree, against the signed checkpoint, with the
	// key pinned at the first start.
	out, err := exec.Command(e2e.Binary(t), "verify", "--url", p.URL, "--key", c.vkey, "--quiet").CombinedOutput()
	if err != nil {
		t.Fatalf("verify --url after a kill: %v\n%s", err, out)
	}

	// The checkpoint is not older than any seen before the kill, and
	// extends it.
	signed := get(t, p.URL+"/checkpoint")
	cp, err := verify.OpenCheckpoint(signed, c.verifier, "")
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size < c.cp.Size {
		t.Fatalf("checkpoint went backwards across a kill: %d, before it %d", cp.Size, c.cp.Size)
	}
	if c.cp.Size > 0 {
		var cons struct{ Proof []string }
		if err := json.Unmarshal(get(t, fmt.Sprintf("%s/proof/consistency?from=%d&to=%d", p.URL, c.cp.Size, cp.Size)), &cons); err != nil {
			t.Fatal(err)
		}
		proof := make([]tlog.Hash, len(cons.Proof))
		for i, h := range cons.Proof {
			if b, err := hex.DecodeString(h); err != nil || copy(proof[i][:], b) != tlog.HashSize {
				t.Fatalf("consistency proof hash %q", h)
			}
		}
		if err := verify.CheckConsistency(c.cp, cp, proof, c.cpNote, signed); err != nil {
			t.Fatal(err)
		}
	}
	c.cp, c.cpNote = cp, signed

	// Replays of acknowledged keys return the original events: all of
	// them at the end, a sample in between to keep the loop short.
	keys := c.keyed
	if !final && len(keys) > 40 {
		keys = make([]*keyedRequest, 40)
		for i := range keys {
			keys[i] = c.keyed[rand.IntN(len(c.keyed))]
		}
	}
	for _, kr := range keys {
		status, replayed, acks, ok := post(p.URL+kr.path, kr.body, kr.key)
		if !ok || status != 200 || !replayed || len(acks) != len(kr.acks) {
			t.Fatalf("replay of key %s: status %d replayed %v, %d events for %d", kr.key, status, replayed, len(acks), len(kr.acks))
		}
		for i := range acks {
			if acks[i] != kr.acks[i] {
				t.Fatalf("replay of key %s: event %+v, originally %+v", kr.key, acks[i], kr.acks[i])
			}
		}
	}
}
