package witnessd

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// testLog is a C2SP log held in memory: a Merkle tree of n leaves and a
// signing key. It stands for any log a witness follows.
type testLog struct {
	origin string
	signer note.Signer
	vkey   string
	stored []tlog.Hash
	n      int64
}

func newTestLog(t testing.TB, origin string) *testLog {
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{origin: origin, signer: s, vkey: vkey}
}

func (l *testLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.stored[x]
	}
	return out, nil
}

// grow appends k leaves with the given seed.
func (l *testLog) grow(t testing.TB, k int, seed string) {
	for i := 0; i < k; i++ {
		hs, err := tlog.StoredHashes(l.n, []byte(fmt.Sprintf("%s-%d", seed, l.n)), l)
		if err != nil {
			t.Fatal(err)
		}
		l.stored = append(l.stored, hs...)
		l.n++
	}
}

// checkpoint signs the tree of size n.
func (l *testLog) checkpoint(t testing.TB, n int64) []byte {
	root, err := tlog.TreeHash(n, l)
	if err != nil {
		t.Fatal(err)
	}
	b, err := verify.SignCheckpoint(verify.Checkpoint{Origin: l.origin, Size: n, Hash: root}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *testLog) proof(t testing.TB, from, to int64) []tlog.Hash {
	if from == 0 || from == to {
		return nil
	}
	p, err := tlog.ProveTree(to, from, l)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (l *testLog) key(t testing.TB) note.Verifier {
	v, err := note.NewVerifier(l.vkey)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type fixture struct {
	dir    string
	signer *witness.Signer
	v      note.Verifier
	w      *Witness
	srv    *httptest.Server
	logs   []*testLog
}

func newFixture(t *testing.T, logs ...*testLog) *fixture {
	t.Helper()
	skey, vkey, err := witness.GenerateKey("witness.test/w1")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := witness.NewSigner(skey)
	v, _ := witness.NewVerifier(vkey)
	f := &fixture{dir: t.TempDir(), signer: s, v: v, logs: logs}
	f.open(t)
	return f
}

func (f *fixture) open(t *testing.T) {
	t.Helper()
	var ls []Log
	for _, l := range f.logs {
		ls = append(ls, Log{Origin: l.origin, Keys: []note.Verifier{l.key(t)}})
	}
	w, err := Open(Options{Dir: f.dir, Signer: f.signer, Logs: ls})
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	f.srv = httptest.NewServer(Handler(w, HandlerOptions{}))
	t.Cleanup(func() { f.srv.Close(); w.Close() })
}

func (f *fixture) restart(t *testing.T) {
	f.srv.Close()
	f.w.Close()
	f.open(t)
}

func (f *fixture) post(t *testing.T, body []byte) (int, string, []byte) {
	t.Helper()
	resp, err := http.Post(f.srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

func (f *fixture) add(t *testing.T, l *testLog, old, n int64) (int, []byte) {
	t.Helper()
	req := &witness.AddCheckpoint{OldSize: old, Proof: l.proof(t, old, n), Checkpoint: l.checkpoint(t, n)}
	code, _, b := f.post(t, req.Marshal())
	return code, b
}

func TestAddCheckpoint(t *testing.T) {
	l := newTestLog(t, "log.test/a")
	f := newFixture(t, l)
	l.grow(t, 10, "a")
	code, line := f.add(t, l, 0, 10)
	if code != 200 {
		t.Fatalf("first checkpoint: %d %s", code, line)
	}
	cosigned := witness.Append(l.checkpoint(t, 10), line)
	if _, err := witness.CheckQuorum(cosigned, []note.Verifier{f.v}, 1); err != nil {
		t.Fatalf("the cosignature does not verify: %v\n%s", err, cosigned)
	}
	l.grow(t, 7, "a")
	if code, b := f.add(t, l, 10, 17); code != 200 {
		t.Fatalf("extension: %d %s", code, b)
	}
	// The same checkpoint again, from its own size: cosigned again.
	if code, b := f.add(t, l, 17, 17); code != 200 {
		t.Fatalf("same size: %d %s", code, b)
	}
	// The state is durable: a restarted witness knows size 17.
	f.restart(t)
	code, b := f.add(t, l, 10, 17)
	if code != http.StatusConflict || string(b) != "17\n" {
		t.Fatalf("after restart, old size 10: %d %q, want 409 \"17\\n\"", code, b)
	}
	// Monitors read the cosigned checkpoint by origin hash.
	sum := sha256.Sum256([]byte(l.origin))
	resp, err := http.Get(f.srv.URL + "/" + hex.EncodeToString(sum[:]) + "/checkpoint")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("monitoring checkpoint: %d %s", resp.StatusCode, got)
	}
	if _, err := verify.OpenCheckpoint(got, l.key(t), ""); err != nil {
		t.Fatalf("served checkpoint lacks the log's signature: %v", err)
	}
	if _, err := witness.CheckQuorum(got, []note.Verifier{f.v}, 1); err != nil {
		t.Fatalf("served checkpoint lacks the cosignature: %v", err)
	}
	// The index names the witness and the size.
	resp, err = http.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		VerifierKey string    `json:"verifier_key"`
		Logs        []LogInfo `json:"logs"`
	}
	json.NewDecoder(resp.Body).Decode(&idx)
	resp.Body.Close()
	if idx.VerifierKey != f.signer.VerifierKey() || len(idx.Logs) != 1 || idx.Logs[0].Size != 17 {
		t.Fatalf("index: %+v", idx)
	}
}

// TestAddCheckpointRefusals walks every refusal of tlog-witness, each with
// its status code, and checks that none of them moves the state.
func TestAddCheckpointRefusals(t *testing.T) {
	l := newTestLog(t, "log.test/b")
	other := newTestLog(t, "log.test/unknown")
	f := newFixture(t, l)
	l.grow(t, 8, "b")
	if code, b := f.add(t, l, 0, 8); code != 200 {
		t.Fatalf("setup: %d %s", code, b)
	}
	l.grow(t, 8, "b")
	// A fork: another tree of 16 whose first 8 leaves differ.
	fork := newTestLog(t, l.origin)
	fork.signer, fork.vkey = l.signer, l.vkey
	fork.grow(t, 16, "fork")
	impostor := newTestLog(t, l.origin) // right origin, wrong key
	impostor.grow(t, 16, "b")
	other.grow(t, 3, "o")

	good := l.checkpoint(t, 16)
	goodProof := l.proof(t, 8, 16)
	badSig := bytes.Replace(good, []byte("\n16\n"), []byte("\n17\n"), 1)
	emptyBad := newTestLog(t, l.origin)
	emptyBad.signer = l.signer
	zeroWrongRoot, _ := verify.SignCheckpoint(verify.Checkpoint{Origin: l.origin, Size: 0, Hash: tlog.Hash{1}}, l.signer)

	cases := []struct {
		name string
		req  *witness.AddCheckpoint
		raw  string
		code int
		want string
	}{
		{name: "unknown log", req: &witness.AddCheckpoint{OldSize: 0, Checkpoint: other.checkpoint(t, 3)}, code: 404, want: "unknown log"},
		{name: "no trusted signature", req: &witness.AddCheckpoint{OldSize: 8, Proof: goodProof, Checkpoint: impostor.checkpoint(t, 16)}, code: 403, want: "no signature"},
		{name: "signature does not verify", req: &witness.AddCheckpoint{OldSize: 8, Proof: goodProof, Checkpoint: badSig}, code: 403, want: "does not verify"},
		{name: "old size beyond checkpoint", req: &witness.AddCheckpoint{OldSize: 20, Checkpoint: good}, code: 400, want: "larger than"},
		{name: "stale old size", req: &witness.AddCheckpoint{OldSize: 4, Proof: l.proof(t, 4, 16), Checkpoint: good}, code: 409},
		{name: "old size zero after cosigning", req: &witness.AddCheckpoint{OldSize: 0, Checkpoint: good}, code: 409},
		{name: "forked checkpoint", req: &witness.AddCheckpoint{OldSize: 8, Proof: fork.proof(t, 8, 16), Checkpoint: fork.checkpoint(t, 16)}, code: 422, want: "does not verify"},
		{name: "proof of another tree", req: &witness.AddCheckpoint{OldSize: 8, Proof: fork.proof(t, 8, 16), Checkpoint: good}, code: 422},
		{name: "no proof", req: &witness.AddCheckpoint{OldSize: 8, Checkpoint: good}, code: 422},
		{name: "same size other root", req: &witness.AddCheckpoint{OldSize: 8, Checkpoint: fork.checkpoint(t, 8)}, code: 422, want: "two different roots"},
		{name: "size zero wrong root", req: &witness.AddCheckpoint{OldSize: 0, Checkpoint: zeroWrongRoot}, code: 422, want: "empty tree"},
		{name: "garbage", raw: "hello\n", code: 400, want: "first line"},
		{name: "empty body", raw: "", code: 400},
		{name: "no origin", raw: "old 0\n\n\n16\n", code: 400},
		{name: "note without signatures", raw: "old 8\n\n" + l.origin + "\n16\nAAAA\n", code: 400},
		{name: "body not a checkpoint", raw: "old 0\n\n" + string(mustSign(t, l.origin+"\nnot a size\nAAAA\n", l.signer)), code: 400, want: "tree size"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(c.raw)
			if c.req != nil {
				body = c.req.Marshal()
			}
			code, ctype, b := f.post(t, body)
			if code != c.code {
				t.Fatalf("status %d, want %d: %s", code, c.code, b)
			}
			if code == 409 {
				if ctype != "text/x.tlog.size" || string(b) != "8\n" {
					t.Fatalf("409 answer %q %q, want text/x.tlog.size \"8\\n\"", ctype, b)
				}
				return
			}
			var p struct {
				Status int
				Detail string
			}
			if err := json.Unmarshal(b, &p); err != nil || ctype != "application/problem+json" || p.Status != code || p.Detail == "" {
				t.Fatalf("not a problem document: %s %s", ctype, b)
			}
			if !strings.Contains(p.Detail, c.want) {
				t.Fatalf("detail %q does not say %q", p.Detail, c.want)
			}
		})
	}
	// Nothing moved: the honest extension from 8 still works.
	if code, b := f.add(t, l, 8, 16); code != 200 {
		t.Fatalf("after refusals: %d %s", code, b)
	}
}

func mustSign(t *testing.T, text string, s note.Signer) []byte {
	b, err := note.Sign(&note.Note{Text: text}, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAddCheckpointRace submits many extensions at once, all from the same
// old size: exactly one may win, and the state never goes back.
func TestAddCheckpointRace(t *testing.T) {
	l := newTestLog(t, "log.test/c")
	f := newFixture(t, l)
	l.grow(t, 40, "c")
	if code, b := f.add(t, l, 0, 5); code != 200 {
		t.Fatalf("setup: %d %s", code, b)
	}
	var wg sync.WaitGroup
	codes := make([]int, 30)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(10 + i)
			req := &witness.AddCheckpoint{OldSize: 5, Proof: l.proof(t, 5, n), Checkpoint: l.checkpoint(t, n)}
			codes[i], _, _ = f.post(t, req.Marshal())
		}()
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case 200:
			won++
		case 409:
		default:
			t.Fatalf("status %d", c)
		}
	}
	if won != 1 {
		t.Fatalf("%d requests from the same old size were cosigned, want 1", won)
	}
	size := f.w.Logs()[0].Size
	b, err := os.ReadFile(filepath.Join(f.dir, hex.EncodeToString(sha(l.origin))+".checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := noteBody(b)
	if err != nil || cp.Size != size {
		t.Fatalf("state on disk %+v %v, in memory %d", cp, err, size)
	}
}

func sha(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func TestStateDirLocked(t *testing.T) {
	l := newTestLog(t, "log.test/d")
	f := newFixture(t, l)
	if _, err := Open(Options{Dir: f.dir, Signer: f.signer, Logs: []Log{{Origin: l.origin, Keys: []note.Verifier{l.key(t)}}}}); err == nil {
		t.Fatal("a second witness opened the same state directory")
	}
}

func TestClientAgainstWitness(t *testing.T) {
	l := newTestLog(t, "log.test/e")
	f := newFixture(t, l)
	l.grow(t, 12, "e")
	c := &witness.Client{URL: f.srv.URL, Verifier: f.v}
	ctx := t.Context()
	// A client that does not know the witness's size starts from 0.
	lines, err := c.AddCheckpoint(ctx, &witness.AddCheckpoint{OldSize: 0, Checkpoint: l.checkpoint(t, 6)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(lines), "— witness.test/w1 ") {
		t.Fatalf("lines %q", lines)
	}
	_, err = c.AddCheckpoint(ctx, &witness.AddCheckpoint{OldSize: 0, Checkpoint: l.checkpoint(t, 12)})
	ce, ok := err.(*witness.ConflictError)
	if !ok || ce.Size != 6 {
		t.Fatalf("want a ConflictError at 6, got %v", err)
	}
	if _, err := c.AddCheckpoint(ctx, &witness.AddCheckpoint{OldSize: ce.Size, Proof: l.proof(t, 6, 12), Checkpoint: l.checkpoint(t, 12)}); err != nil {
		t.Fatal(err)
	}
	// A client expecting another witness key finds no cosignature.
	_, v2key, _ := witness.GenerateKey("witness.test/w1")
	v2, _ := witness.NewVerifier(v2key)
	c2 := &witness.Client{URL: f.srv.URL, Verifier: v2}
	if _, err := c2.AddCheckpoint(ctx, &witness.AddCheckpoint{OldSize: 12, Checkpoint: l.checkpoint(t, 12)}); err == nil {
		t.Fatal("a cosignature by another key was accepted")
	}
	var se *witness.StatusError
	_, err = c.AddCheckpoint(ctx, &witness.AddCheckpoint{OldSize: 12, Checkpoint: []byte("nobody\n1\nAAAA\n\n— x AAAAAAA=\n")})
	if !asStatus(err, &se) || se.Status != 404 {
		t.Fatalf("unknown log: %v", err)
	}
}

func asStatus(err error, se **witness.StatusError) bool {
	s, ok := err.(*witness.StatusError)
	*se = s
	return ok
}

// A log rotating its key is followed with both keys: checkpoints under
// either are cosigned, and the history stays one.
func TestRotatedLogKey(t *testing.T) {
	old := newTestLog(t, "log.test/rot")
	f := newFixture(t, old)
	rotated := newTestLog(t, old.origin)
	f.srv.Close() // reopened below with both keys
	f.w.Close()
	w, err := Open(Options{Dir: f.dir, Signer: f.signer, Logs: []Log{
		{Origin: old.origin, Keys: []note.Verifier{old.key(t)}},
		{Origin: old.origin, Keys: []note.Verifier{rotated.key(t)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	f.srv = httptest.NewServer(Handler(w, HandlerOptions{}))
	t.Cleanup(func() { f.srv.Close(); w.Close() })
	old.grow(t, 4, "r")
	if code, b := f.add(t, old, 0, 4); code != 200 {
		t.Fatalf("old key: %d %s", code, b)
	}
	// The rotated log signs the same tree with its new key.
	rotated.stored, rotated.n = old.stored, old.n
	rotated.grow(t, 3, "r")
	if code, b := f.add(t, rotated, 4, 7); code != 200 {
		t.Fatalf("new key: %d %s", code, b)
	}
}
