package httpapi_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite"
)

// appendN appends n events through the ledger in groups and waits for the
// checkpoint that covers them.
func appendN(t testing.TB, env *apitest.Env, n int) verify.Checkpoint {
	t.Helper()
	ctx := context.Background()
	for n > 0 {
		k := min(n, 500)
		reqs := make([]event.Request, k)
		for i := range reqs {
			reqs[i] = event.Request{Kind: "request_denied", Source: "test", Payload: []byte(`{"n":` + strconv.Itoa(i) + `}`)}
		}
		if _, err := env.Ledger.Append(ctx, reqs); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
	cp, _, err := env.Checkpoints.Wait(ctx, env.Ledger.Head().ID)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

func get(t testing.TB, url string) (resp, []byte) {
	t.Helper()
	r := call(t, "GET", url, "", "")
	return r, r.body
}

func getOK(t testing.TB, url string) []byte {
	t.Helper()
	resp, b := get(t, url)
	if resp.status != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, http.StatusText(resp.status), b)
	}
	return b
}

// servedCheckpoint fetches the key and the checkpoint and checks one with
// the other, as a client that trusts on first use would.
func servedCheckpoint(t testing.TB, env *apitest.Env) (verify.Checkpoint, note.Verifier) {
	t.Helper()
	v, err := verify.ParseVerifierKey(string(getOK(t, env.URL+"/checkpoint/key")))
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != "audit-stream/test" {
		t.Fatalf("key name %q", v.Name())
	}
	resp, b := get(t, env.URL+"/checkpoint")
	if ct := resp.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("checkpoint Content-Type %q", ct)
	}
	cp, err := verify.OpenCheckpoint(b, v, "")
	if err != nil {
		t.Fatalf("served checkpoint: %v\n%s", err, b)
	}
	return cp, v
}

func TestCheckpointCoversAppends(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	cp, _ := servedCheckpoint(t, env)
	if cp.Size != 0 || cp.Hash != verify.EmptyTreeHash {
		t.Fatalf("new log checkpoint = %+v", cp)
	}
	appendN(t, env, 37)
	cp, _ = servedCheckpoint(t, env)
	if cp.Size != 37 {
		t.Fatalf("checkpoint size %d, want 37", cp.Size)
	}
	// /verify agrees with the checkpoint.
	var rep verify.TreeReport
	json.Unmarshal(getOK(t, env.URL+"/verify"), &rep)
	if !rep.Valid || rep.TreeSize != 37 || rep.RootHash != event.Hash(cp.Hash).String() {
		t.Fatalf("/verify = %+v, checkpoint root %x", rep, cp.Hash)
	}
}

// Every proof the server gives verifies with tlog's own checker against the
// signed checkpoint, for random tree sizes, ids and older sizes.
func TestProofsVerifyIndependently(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	r := rand.New(rand.NewPCG(3, 4))
	total := 0
	for round := 0; round < 4; round++ {
		total += 1 + r.IntN(400)
		appendN(t, env, total-int(env.Ledger.Head().ID))
		cp, _ := servedCheckpoint(t, env)
		n := cp.Size
		for k := 0; k < 15; k++ {
			id := 1 + r.Int64N(n)
			var p struct {
				EventID, LeafIndex, TreeSize int64
				RootHash                     event.Hash
				Proof                        []event.Hash
			}
			b := getOK(t, fmt.Sprintf("%s/events/%d/proof", env.URL, id))
			if err := json.Unmarshal(b, &struct {
				EventID   *int64        `json:"event_id"`
				LeafIndex *int64        `json:"leaf_index"`
				TreeSize  *int64        `json:"tree_size"`
				RootHash  *event.Hash   `json:"root_hash"`
				Proof     *[]event.Hash `json:"proof"`
			}{&p.EventID, &p.LeafIndex, &p.TreeSize, &p.RootHash, &p.Proof}); err != nil {
				t.Fatal(err)
			}
			if p.EventID != id || p.LeafIndex != id-1 || p.TreeSize != n || tlog.Hash(p.RootHash) != cp.Hash {
				t.Fatalf("proof header %s", b)
			}
			e, err := env.Store.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(toTlog(p.Proof), n, cp.Hash, id-1, tlog.RecordHash(e.Hash[:])); err != nil {
				t.Fatalf("inclusion of %d in %d: %v", id, n, err)
			}
			m := 1 + r.Int64N(n)
			var c struct {
				From, To int64
				Proof    []event.Hash
			}
			json.Unmarshal(getOK(t, fmt.Sprintf("%s/proof/consistency?from=%d", env.URL, m)), &c)
			if c.From != m || c.To != n {
				t.Fatalf("consistency header %+v", c)
			}
			old, err := tlog.TreeHash(m, storeReader{env})
			if err != nil {
				t.Fatal(err)
			}
			if m < n {
				if err := tlog.CheckTree(toTlog(c.Proof), n, cp.Hash, m, old); err != nil {
					t.Fatalf("consistency %d→%d: %v", m, n, err)
				}
			}
			// An explicit older tree_size gives a proof for that tree.
			var p2 struct {
				RootHash event.Hash   `json:"root_hash"`
				Proof    []event.Hash `json:"proof"`
			}
			if id <= m {
				json.Unmarshal(getOK(t, fmt.Sprintf("%s/events/%d/proof?tree_size=%d", env.URL, id, m)), &p2)
				if tlog.Hash(p2.RootHash) != old {
					t.Fatalf("root at tree_size %d differs from the stored tree", m)
				}
				if err := tlog.CheckRecord(toTlog(p2.Proof), m, old, id-1, tlog.RecordHash(e.Hash[:])); err != nil {
					t.Fatalf("inclusion of %d in %d: %v", id, m, err)
				}
			}
		}
	}
}

type storeReader struct{ env *apitest.Env }

func (s storeReader) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	return s.env.Store.ReadHashes(context.Background(), idx)
}

func toTlog(hs []event.Hash) []tlog.Hash {
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = tlog.Hash(h)
	}
	return out
}

func TestVerifiableLogRejections(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	appendN(t, env, 10)
	for _, c := range []struct {
		path   string
		status int
		detail string
	}{
		{"/events/abc/proof", 422, "must be an integer"},
		{"/events/0/proof", 404, "no event with id 0"},
		{"/events/11/proof", 404, "not in the tree of size 10"},
		{"/events/5/proof?tree_size=4", 404, "not in the tree of size 4"},
		{"/events/5/proof?tree_size=0", 400, "tree_size must be a positive integer"},
		{"/events/5/proof?tree_size=x", 400, "tree_size must be a positive integer"},
		{"/events/5/proof?tree_size=11", 400, "beyond the tree"},
		{"/proof/consistency", 400, "from is required"},
		{"/proof/consistency?from=0", 400, "from must be a positive integer"},
		{"/proof/consistency?from=-3", 400, "from must be a positive integer"},
		{"/proof/consistency?from=6&to=5", 400, "larger than to"},
		{"/proof/consistency?from=11", 400, "beyond the tree"},
		{"/proof/consistency?from=2&to=11", 400, "beyond the tree"},
		{"/events/99/receipt", 404, "no event with id 99"},
		{"/events/x/receipt", 422, "must be an integer"},
		{"/export?after=-1", 400, "after must be a non-negative integer"},
		{"/export?until=z", 400, "until must be a non-negative integer"},
		{"/export?after=5&until=4", 400, "before after"},
		{"/tile/0/001", 404, "needs 512 entries"},
		{"/tile/0/000.p/11", 404, "needs 11 entries"},
		{"/tile/0/000.p/0", 404, "not a tlog-tiles path"},
		{"/tile/0/000.p/256", 404, "not a tlog-tiles path"},
		{"/tile/0/0", 404, "not a tlog-tiles path"},
		{"/tile/0/x000/000", 404, "not a tlog-tiles path"},
		{"/tile/01/000", 404, "not a tlog-tiles path"},
		{"/tile/64/000", 404, "not a tlog-tiles path"},
		{"/tile/0/00a", 404, "not a tlog-tiles path"},
		{"/tile/0/001/002", 404, "not a tlog-tiles path"},
		{"/tile/7/000", 404, "not that large"},
		{"/tile/entries/000.p/11", 404, "needs 11 entries"},
		{"/tile/8/000", 404, "not that large"},
	} {
		resp, b := get(t, env.URL+c.path)
		var p struct{ Detail string }
		json.Unmarshal(b, &p)
		if resp.status != c.status || resp.header.Get("Content-Type") != "application/problem+json" || !strings.Contains(p.Detail, c.detail) {
			t.Errorf("GET %s = %d %s, want %d with detail containing %q", c.path, resp.status, b, c.status, c.detail)
		}
	}
	if env.Ledger.Head().ID != 10 {
		t.Fatal("a rejected request changed the log")
	}
}

// httpTiles is a tlog.TileReader that fetches C2SP tlog-tiles paths over
// plain HTTP: the tile logic (which tiles, how they authenticate against
// the tree hash) is x/mod's, not ours.
type httpTiles struct {
	t   testing.TB
	url string
}

func (h httpTiles) Height() int { return 8 }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		resp, b := get(h.t, h.url+c2spTilePath(tile))
		if resp.status != 200 {
			return nil, fmt.Errorf("GET %s: %s", c2spTilePath(tile), http.StatusText(resp.status))
		}
		if cc := resp.header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			h.t.Errorf("tile %s Cache-Control %q", c2spTilePath(tile), cc)
		}
		out[i] = b
	}
	return out, nil
}

func (h httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// c2spTilePath writes a path as the C2SP spec words it: no height segment,
// N in 3-digit groups with all but the last x-prefixed.
func c2spTilePath(t tlog.Tile) string {
	return "/tile/" + strconv.Itoa(t.L) + "/" + c2spIndex(t.N, t.W)
}

func c2spIndex(n int64, w int) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n /= 1000; n > 0; n /= 1000 {
		s = fmt.Sprintf("x%03d/", n%1000) + s
	}
	if w != 256 {
		s += ".p/" + strconv.Itoa(w)
	}
	return s
}

func TestTilesWithIndependentClient(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	cp := appendN(t, env, 256*3+17)
	thr := tlog.TileHashReader(tlog.Tree{N: cp.Size, Hash: cp.Hash}, httpTiles{t, env.URL})
	// TileHashReader authenticates every tile it reads against the tree
	// hash: a root computed through it equals the checkpoint's only if the
	// tiles are right.
	root, err := tlog.TreeHash(cp.Size, thr)
	if err != nil || root != cp.Hash {
		t.Fatalf("root from tiles = %x, %v; checkpoint %x", root, err, cp.Hash)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for k := 0; k < 20; k++ {
		id := 1 + r.Int64N(cp.Size)
		p, err := tlog.ProveRecord(cp.Size, id-1, thr)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := env.Store.Get(context.Background(), id)
		if err := tlog.CheckRecord(p, cp.Size, cp.Hash, id-1, tlog.RecordHash(e.Hash[:])); err != nil {
			t.Fatal(err)
		}
	}
	// Entry bundles: each entry is the leaf data, the event's 32-byte hash,
	// and its RFC 6962 leaf hash is the matching hash of the level-0 tile —
	// what any tlog-tiles client checks.
	for _, b := range []struct {
		n int64
		w int
	}{{0, 256}, {2, 256}, {3, 17}} {
		level0 := getOK(t, env.URL+c2spTilePath(tlog.Tile{H: 8, L: 0, N: b.n, W: b.w}))
		bundle := getOK(t, env.URL+"/tile/entries/"+c2spIndex(b.n, b.w))
		for i := 0; i < b.w; i++ {
			if len(bundle) < 2 {
				t.Fatalf("bundle %d ends after %d entries", b.n, i)
			}
			l := int(binary.BigEndian.Uint16(bundle))
			if l != 32 || len(bundle) < 2+l {
				t.Fatalf("entry %d of bundle %d: length %d", i, b.n, l)
			}
			entry := bundle[2 : 2+l]
			bundle = bundle[2+l:]
			if leaf := tlog.RecordHash(entry); string(leaf[:]) != string(level0[32*i:32*i+32]) {
				t.Fatalf("entry %d of bundle %d does not match its level-0 tile hash", i, b.n)
			}
			// The entry is the hash of the event with that id.
			e, err := env.Store.Get(context.Background(), b.n*256+int64(i)+1)
			if err != nil || string(e.Hash[:]) != string(entry) {
				t.Fatalf("entry %d of bundle %d is not the hash of event %d", i, b.n, b.n*256+int64(i)+1)
			}
		}
		if len(bundle) != 0 {
			t.Fatalf("bundle %d has %d extra bytes", b.n, len(bundle))
		}
	}
}

func TestExportNDJSON(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	appendN(t, env, 3000)
	resp, err := apitest.Client.Get(env.URL + "/export?after=100&until=2900")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	want := int64(101)
	for sc.Scan() {
		e, err := event.ParseStored(sc.Bytes())
		if err != nil || e.ID != want {
			t.Fatalf("line for %d: %v (id %d)", want, err, e.ID)
		}
		want++
	}
	if want != 2901 {
		t.Fatalf("export ended before %d", want)
	}
	// The whole export rebuilds the checkpointed tree.
	cp, _ := servedCheckpoint(t, env)
	body := getOK(t, env.URL+"/export")
	var tree verify.Tree
	for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		e, _ := event.ParseStored([]byte(line))
		tree.Add(e.Hash)
	}
	if tree.Size() != cp.Size || tree.Root() != cp.Hash {
		t.Fatalf("export rebuilds %d / %x, checkpoint %d / %x", tree.Size(), tree.Root(), cp.Size, cp.Hash)
	}
}

func TestReceiptVerifiesOffline(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	appendN(t, env, 20)
	_, v := servedCheckpoint(t, env)
	// An event appended just now is covered by the next checkpoint: the
	// receipt waits for it.
	evs, err := env.Ledger.Append(context.Background(), []event.Request{{Kind: "request_denied", Source: "late", Payload: []byte(`{}`)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{1, 13, evs[0].ID} {
		b := getOK(t, fmt.Sprintf("%s/events/%d/receipt", env.URL, id))
		rc, err := verify.ParseReceipt(b)
		if err != nil {
			t.Fatalf("receipt %d: %v\n%s", id, err, b)
		}
		if _, err := rc.Verify(v, ""); err != nil || rc.Event.ID != id {
			t.Fatalf("receipt %d does not verify: %v", id, err)
		}
	}
}

// Rewriting a stored tree node behind the server's back is caught by
// /verify, which rebuilds the root from the events.
func TestVerifyDetectsTreeMismatch(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	appendN(t, env, 50)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(env.Dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE events SET tree = zeroblob(length(tree)) WHERE event_id = 32`); err != nil {
		t.Fatal(err)
	}
	var rep verify.TreeReport
	json.Unmarshal(getOK(t, env.URL+"/verify"), &rep)
	if rep.Valid || rep.Reason == nil || !strings.Contains(*rep.Reason, "Merkle root mismatch at tree size 50") {
		t.Fatalf("/verify after tree tamper = %+v", rep)
	}
	if rep.Checked != 50 {
		t.Errorf("checked = %d: the chain itself is intact", rep.Checked)
	}
}
