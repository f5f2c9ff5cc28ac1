package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// A cluster: three instances of the binary on one PostgreSQL schema, signing
// with one key.
type cluster struct {
	procs  []*e2e.Process
	key    *checkpoint.Key
	origin string
}

func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	url := pgtest.Schema(t)
	c := &cluster{origin: "example.com/cluster"}
	skey, key, err := checkpoint.GenerateKey(c.origin)
	if err != nil {
		t.Fatal(err)
	}
	c.key = key
	keyFile := filepath.Join(t.TempDir(), "signing.key")
	if err := checkpoint.WriteKeyFile(keyFile, skey); err != nil {
		t.Fatal(err)
	}
	for range n {
		c.procs = append(c.procs, e2e.StartStore(t, url, "", "--signing-key", keyFile, "--origin", c.origin, "--checkpoint-interval", "50ms"))
	}
	return c
}

// subscriber reads one /stream connection from the start of the log and
// records every event it is sent, with no reconnection: a duplicate, a gap
// or a reordering on one connection is the server's.
type subscriber struct {
	mu     sync.Mutex
	events []ack
	err    error // the connection's
	order  error // a gap, duplicate or reordering: the server's
	done   chan struct{}
}

func subscribe(ctx context.Context, url string) *subscriber {
	s := &subscriber{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		req, _ := http.NewRequestWithContext(ctx, "GET", url+"/stream?after=0", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			s.fail(err)
			return
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
			if !ok {
				continue
			}
			var a ack
			if err := json.Unmarshal(data, &a); err != nil {
				s.fail(fmt.Errorf("bad data line %q: %v", data, err))
				return
			}
			s.mu.Lock()
			if n := len(s.events); (n == 0 && a.EventID != 1) || (n > 0 && a.EventID != s.events[n-1].EventID+1) {
				last := int64(0)
				if n > 0 {
					last = s.events[n-1].EventID
				}
				s.order = fmt.Errorf("event %d arrived after %d", a.EventID, last)
			}
			s.events = append(s.events, a)
			s.mu.Unlock()
		}
	}()
	return s
}

func (s *subscriber) fail(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *subscriber) seen() (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.order
	if err == nil {
		err = s.err
	}
	if len(s.events) == 0 {
		return 0, err
	}
	return s.events[len(s.events)-1].EventID, err
}

// post sends body and returns the acknowledged events, or nil if the request
// was not acknowledged (an error, a non-2xx, a cut-off body).
func postAck(url, path, key, body string) ([]ack, int) {
	req, _ := http.NewRequest("POST", url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || (resp.StatusCode != 200 && resp.StatusCode != 201) {
		return nil, resp.StatusCode
	}
	var out []ack
	if path == "/events/batch" {
		if json.Unmarshal(b, &out) != nil {
			return nil, resp.StatusCode
		}
		return out, resp.StatusCode
	}
	var a ack
	if json.Unmarshal(b, &a) != nil {
		return nil, resp.StatusCode
	}
	return []ack{a}, resp.StatusCode
}

// Three instances, 48 producers spread over them sending singles, batches
// and idempotent retries through another instance, a subscriber on every
// instance, checkpoints polled from every instance; one instance is killed
// with SIGKILL mid-load. Afterwards: one valid chain holding every
// acknowledged event with the hash it was acknowledged with; every retry
// replayed the first answer; every surviving subscriber saw every event
// exactly once, in order; every checkpoint any instance served is of that
// one tree, and no instance's checkpoints went backwards.
func TestClusterOneChain(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := make([]*subscriber, len(c.procs))
	for i, p := range c.procs {
		subs[i] = subscribe(ctx, p.URL)
	}
	var alive atomic.Int32
	alive.Store(int32(len(c.procs)))
	var (
		mu       sync.Mutex
		acked    = map[int64]string{}
		replays  atomic.Int64
		problems []string
	)
	record := func(evs []ack) {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range evs {
			if h, dup := acked[a.EventID]; dup && h != a.Hash {
				problems = append(problems, fmt.Sprintf("event %d acknowledged with two hashes", a.EventID))
			}
			acked[a.EventID] = a.Hash
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 48 {
		wg.Go(func() {
			// Producers of the instance that dies move to a live one.
			target := func(k int) string { return c.procs[k%int(alive.Load())].URL }
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				src := fmt.Sprintf("p%d", w)
				switch r := rand.IntN(10); {
				case r < 6:
					evs, _ := postAck(target(w), "/events", "", fmt.Sprintf(`{"kind":"other","source":%q,"payload":{"i":%d}}`, src, i))
					record(evs)
				case r < 9:
					var b strings.Builder
					b.WriteByte('[')
					for j := range 1 + rand.IntN(20) {
						if j > 0 {
							b.WriteByte(',')
						}
						fmt.Fprintf(&b, `{"kind":"other","source":%q,"payload":{"i":%d,"j":%d}}`, src, i, j)
					}
					b.WriteByte(']')
					evs, _ := postAck(target(w), "/events/batch", "", b.String())
					record(evs)
				default:
					key := fmt.Sprintf("k-%d-%d", w, i)
					body := fmt.Sprintf(`{"kind":"other","source":%q,"payload":{"keyed":%d}}`, src, i)
					first, _ := postAck(target(w), "/events", key, body)
					if first == nil {
						continue
					}
					record(first)
					// The retry goes to another instance.
					again, status := postAck(target(w+1), "/events", key, body)
					if again == nil {
						continue
					}
					if status != 200 || again[0] != first[0] {
						mu.Lock()
						problems = append(problems, fmt.Sprintf("retry of key %s through another instance: %d %+v, first %+v", key, status, again, first))
						mu.Unlock()
					}
					replays.Add(1)
				}
			}
		})
	}

	// Checkpoints as every instance serves them, while the load runs.
	v, err := verify.ParseVerifierKey(c.key.VerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	var served [][]verify.Checkpoint // per instance, in the order served
	served = make([][]verify.Checkpoint, len(c.procs))
	poll := func(k int) {
		resp, err := client.Get(c.procs[k].URL + "/checkpoint")
		if err != nil {
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return
		}
		cp, err := verify.OpenCheckpoint(b, v, c.origin)
		if err != nil {
			t.Errorf("instance %d served a checkpoint that does not verify: %v", k, err)
			return
		}
		served[k] = append(served[k], cp)
	}
	began := time.Now()
	deadline := time.Now().Add(3 * time.Second)
	killed := false
	for time.Now().Before(deadline) {
		for k := range int(alive.Load()) {
			poll(k)
		}
		if !killed && time.Until(deadline) < 1800*time.Millisecond {
			// SIGKILL the last instance mid-load; its producers move on.
			alive.Store(2)
			c.procs[2].Kill()
			killed = true
		}
		time.Sleep(30 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("load done after %s", time.Since(began).Round(time.Millisecond))

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Error(p)
	}
	if len(acked) < 100 || replays.Load() == 0 {
		t.Fatalf("too little load to prove anything: %d events acknowledged, %d replays", len(acked), replays.Load())
	}

	// The one chain, read through a survivor.
	chain := exportChain(t, c.procs[0].URL)
	head := int64(len(chain))
	for id, h := range acked {
		if id > head || chain[id-1].Hash.String() != h {
			t.Fatalf("acknowledged event %d is missing or differs", id)
		}
	}
	for k := range 2 {
		var rep struct {
			Valid    bool   `json:"valid"`
			Checked  int64  `json:"checked"`
			TreeSize int64  `json:"tree_size"`
			Root     string `json:"root_hash"`
		}
		resp, err := client.Get(c.procs[k].URL + "/verify")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&rep)
		resp.Body.Close()
		if !rep.Valid || rep.Checked != head {
			t.Fatalf("instance %d /verify: %+v, head %d", k, rep, head)
		}
	}

	// Every checkpoint served is of this tree: one log, never a fork.
	var leaves []tlog.Hash
	for _, e := range chain {
		leaves = append(leaves, tlog.RecordHash(e.Hash[:]))
	}
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			level, n := tlog.SplitStoredHashIndex(x)
			out[i] = subtreeRoot(leaves[n<<level : (n+1)<<level])
		}
		return out, nil
	})
	total := 0
	for k, list := range served {
		for i, cp := range list {
			if i > 0 && cp.Size < list[i-1].Size {
				t.Fatalf("instance %d's checkpoint went backwards: %d after %d", k, cp.Size, list[i-1].Size)
			}
			root, err := tlog.TreeHash(cp.Size, hr)
			if err != nil || root != cp.Hash {
				t.Fatalf("instance %d served a checkpoint of size %d that is not of the chain's tree", k, cp.Size)
			}
			total++
		}
	}

	t.Logf("chain and checkpoints checked after %s", time.Since(began).Round(time.Millisecond))
	// Every surviving subscriber catches up to the head, having seen each
	// event once, in order, as stored.
	for k := range 2 {
		until := time.Now().Add(20 * time.Second)
		for {
			seen, err := subs[k].seen()
			if err != nil {
				t.Fatalf("subscriber of instance %d: %v", k, err)
			}
			if seen == head {
				break
			}
			if time.Now().After(until) {
				t.Fatalf("subscriber of instance %d saw up to %d of %d", k, seen, head)
			}
			time.Sleep(20 * time.Millisecond)
		}
		subs[k].mu.Lock()
		for i, a := range subs[k].events {
			if a.Hash != chain[i].Hash.String() {
				t.Fatalf("subscriber of instance %d got event %d with another hash", k, a.EventID)
			}
		}
		subs[k].mu.Unlock()
	}
	t.Logf("subscribers caught up after %s", time.Since(began).Round(time.Millisecond))
	// The dead instance's subscriber saw a prefix, also exactly once (its
	// connection ended with the process).
	subs[2].mu.Lock()
	defer subs[2].mu.Unlock()
	if subs[2].order != nil {
		t.Fatalf("subscriber of the killed instance: %v", subs[2].order)
	}
	t.Logf("%d events (%d acknowledged), %d replays through another instance, %d checkpoints checked", head, len(acked), replays.Load(), total)
}

// exportChain reads the whole log from url and checks it is one valid chain.
func exportChain(t *testing.T, url string) []event.Event {
	t.Helper()
	resp, err := client.Get(url + "/export?after=0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var chain []event.Event
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		e, err := event.ParseStored(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, e)
	}
	vc := verify.NewChain()
	for i := range chain {
		if err := vc.Add(&chain[i]); err != nil {
			t.Fatalf("the chain is broken: %v", err)
		}
	}
	return chain
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// subtreeRoot is RFC 6962's MTH of a perfect subtree.
func subtreeRoot(l []tlog.Hash) tlog.Hash {
	if len(l) == 1 {
		return l[0]
	}
	return tlog.NodeHash(subtreeRoot(l[:len(l)/2]), subtreeRoot(l[len(l)/2:]))
}
