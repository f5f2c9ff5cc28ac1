package hostile

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// memLog is a C2SP log held in the test: what a witness is fed.
type memLog struct {
	origin string
	signer note.Signer
	vkey   string
	stored []tlog.Hash
	n      int64
}

func (l *memLog) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = l.stored[x]
	}
	return out, nil
}

func (l *memLog) grow(t *testing.T, k int) {
	for range k {
		hs, err := tlog.StoredHashes(l.n, fmt.Appendf(nil, "leaf %d", l.n), l)
		if err != nil {
			t.Fatal(err)
		}
		l.stored, l.n = append(l.stored, hs...), l.n+1
	}
}

// request is an add-checkpoint of the whole tree from size old.
func (l *memLog) request(t *testing.T, old int64) []byte {
	root, err := tlog.TreeHash(l.n, l)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := verify.SignCheckpoint(verify.Checkpoint{Origin: l.origin, Size: l.n, Hash: root}, l.signer)
	if err != nil {
		t.Fatal(err)
	}
	req := &witness.AddCheckpoint{OldSize: old, Checkpoint: cp}
	if old > 0 && old < l.n {
		if req.Proof, err = tlog.ProveTree(l.n, old, l); err != nil {
			t.Fatal(err)
		}
	}
	return req.Marshal()
}

// startWitness runs `audit-stream witness serve` following one in-test log.
func startWitness(t *testing.T, args ...string) (*e2e.Process, *memLog) {
	t.Helper()
	dir := t.TempDir()
	skey, _, err := witness.GenerateKey("witness.test/hostile")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "w.key")
	if err := os.WriteFile(keyFile, []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lskey, lvkey, err := note.GenerateKey(rand.Reader, "log.test/hostile")
	if err != nil {
		t.Fatal(err)
	}
	ls, _ := note.NewSigner(lskey)
	l := &memLog{origin: "log.test/hostile", signer: ls, vkey: lvkey}
	p := e2e.StartCommand(t, append([]string{"witness", "serve", "--addr", "127.0.0.1:0", "--key", keyFile,
		"--state", filepath.Join(dir, "state"), "--log", lvkey}, args...)...)
	return p, l
}

func postWitness(t *testing.T, url string, body []byte) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Post(url+"/add-checkpoint", "text/plain", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestWitnessHostileClients mounts the attacks of this package against the
// witness's one write endpoint, then checks that it still cosigns and kept
// its state.
func TestWitnessHostileClients(t *testing.T) {
	p, l := startWitness(t, "--body-timeout", "1s")
	l.grow(t, 5)
	if code, b := postWitness(t, p.URL, l.request(t, 0)); code != 200 {
		t.Fatalf("setup: %d %s", code, b)
	}

	t.Run("huge body", func(t *testing.T) {
		// Announced as 100 MiB: refused once the limit is passed, long
		// before the client is done sending.
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: %d\r\n\r\n", 100<<20)
		chunk := bytes.Repeat([]byte("A"), 64<<10)
		sent := 0
		for ; sent < 100<<20; sent += len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				break // the witness closed the connection
			}
		}
		if sent >= 100<<20 {
			t.Fatal("the witness read a 100 MiB body to the end")
		}
		t.Logf("connection closed after %d KiB of a 100 MiB body", sent>>10)
		// Chunked, without a length: the same limit.
		resp, b, err := rawRequest(t, p.Addr, "POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nTransfer-Encoding: chunked\r\n\r\n"+
			fmt.Sprintf("%x\r\n%s\r\n", 80<<10, strings.Repeat("B", 80<<10))+"0\r\n\r\n", 10*time.Second)
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked 80 KiB: %v %v %s", resp, err, b)
		}
		if problemDetail(b) == "" {
			t.Fatalf("413 without a problem detail: %s", b)
		}
	})

	t.Run("slow body", func(t *testing.T) {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		begun := time.Now()
		fmt.Fprintf(c, "POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 1000\r\n\r\nold 5\n")
		done := make(chan []byte, 1)
		go func() {
			b, _ := io.ReadAll(c)
			done <- b
		}()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case b := <-done:
				if !bytes.Contains(b, []byte(" 408 ")) {
					t.Fatalf("slow body answered %q, want 408", b)
				}
				t.Logf("slow body cut after %v", time.Since(begun).Round(time.Millisecond))
				return
			case <-tick.C:
				c.Write([]byte("A"))
				if time.Since(begun) > 15*time.Second {
					t.Fatal("a slow body held its connection for 15 s with --body-timeout 1s")
				}
			}
		}
	})

	t.Run("garbage", func(t *testing.T) {
		junk := make([]byte, 4096)
		rand.Read(junk)
		for name, body := range map[string]string{
			"random bytes":   string(junk),
			"empty":          "",
			"json":           `{"old":5,"checkpoint":"x"}`,
			"only old":       "old 5\n",
			"nul":            "old 5\n\nlog.test/hostile\x00\n5\nAAAA\n\n— x y\n",
			"unknown origin": "old 0\n\nnot.a.log\n1\n" + strings.Repeat("A", 43) + "=\n\n— not.a.log AAAAAAAA\n",
			"html":           "<html><body>hello</body></html>\n\n",
		} {
			code, b := postWitness(t, p.URL, []byte(body))
			if code < 400 || code >= 500 || problemDetail(b) == "" {
				t.Errorf("%s: %d %s, want a 4xx problem", name, code, b)
			}
		}
		// Not even HTTP.
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write(junk)
		b, _ := io.ReadAll(c)
		c.Close()
		if len(b) > 0 && !bytes.HasPrefix(b, []byte("HTTP/1.1 400")) {
			t.Errorf("binary junk answered %q", b[:min(len(b), 64)])
		}
	})

	t.Run("many at once", func(t *testing.T) {
		// 200 slow bodies held open while an honest log submits: it is
		// answered, the slow ones are cut by the body timeout.
		var wg sync.WaitGroup
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", p.Addr)
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				fmt.Fprintf(c, "POST /add-checkpoint HTTP/1.1\r\nHost: w\r\nContent-Length: 1000\r\n\r\nold 5\n")
				io.ReadAll(c)
			}()
		}
		time.Sleep(200 * time.Millisecond)
		l.grow(t, 3)
		if code, b := postWitness(t, p.URL, l.request(t, 5)); code != 200 {
			t.Fatalf("honest submission among slow ones: %d %s", code, b)
		}
		wg.Wait()
	})

	// The state survived: the next extension is from size 8.
	l.grow(t, 2)
	if code, b := postWitness(t, p.URL, l.request(t, 8)); code != 200 {
		t.Fatalf("after the attacks: %d %s", code, b)
	}
	if errs := logLevels(p.Log())["ERROR"]; len(errs) > 0 {
		t.Fatalf("the witness logged errors for client mistakes:\n%s", strings.Join(errs, "\n"))
	}
}
