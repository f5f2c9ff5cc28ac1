package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BinaryEnv names a prebuilt audit-stream binary for the tests to run instead
// of building one (CI builds it once with `go build` and sets it).
const BinaryEnv = "AUDIT_STREAM_TEST_BINARY"

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary returns the path of an audit-stream binary built from this checkout,
// building it at most once per source state and machine: every test process
// (one per package) shares it, and a warm run builds nothing.
//
// It is built without the race detector even under `go test -race`: the
// attack tests measure the real server's memory and latency, which a race
// build multiplies several times over. The binary is
// kept in the user cache directory, keyed by a hash of everything that goes
// into it; old entries are pruned. $AUDIT_STREAM_TEST_BINARY overrides all
// of this.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv(BinaryEnv); p != "" {
			if _, err := os.Stat(p); err != nil {
				buildErr = fmt.Errorf("%s: %w", BinaryEnv, err)
				return
			}
			binPath = p
			return
		}
		binPath, buildErr = cachedBuild()
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// moduleRoot is the repository root, found from this file's path.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func cachedBuild() (string, error) {
	root := moduleRoot()
	key, err := sourceKey(root)
	if err != nil {
		return "", err
	}
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	cache := filepath.Join(base, "audit-stream-test-bin")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(cache, key, "audit-stream")
	if _, err := os.Stat(bin); err == nil {
		touch(filepath.Join(cache, key))
		return bin, nil
	}
	// Test processes of several packages start at once: one builds, the
	// others wait for it and find the binary.
	unlock, err := lockFile(filepath.Join(cache, key+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	tmp := bin + ".tmp"
	args := []string{"build", "-o", tmp}
	cmd := exec.Command("go", append(args, "./cmd/audit-stream")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	prune(cache, key)
	return bin, nil
}

// sourceKey hashes what the binary is built from: the toolchain and build
// settings, go.mod and go.sum (which pin every dependency), and each file of
// this module that goes into cmd/audit-stream, embedded files included.
func sourceKey(root string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s/%s cgo=%s flags=%s exp=%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH,
		os.Getenv("CGO_ENABLED"), os.Getenv("GOFLAGS"), os.Getenv("GOEXPERIMENT"))
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}{{range .GoFiles}} {{.}}{{end}}{{range .CgoFiles}} {{.}}{{end}}{{range .EmbedFiles}} {{.}}{{end}}{{end}}{{end}}`,
		"./cmd/audit-stream")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go list: %v\n%s", err, stderr.Bytes())
	}
	files := []string{filepath.Join(root, "go.mod"), filepath.Join(root, "go.sum")}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		for _, name := range f[1:] {
			files = append(files, filepath.Join(f[0], name))
		}
	}
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil && !(errors.Is(err, os.ErrNotExist) && strings.HasSuffix(f, "go.sum")) {
			return "", err
		}
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

func touch(dir string) {
	now := time.Now()
	os.Chtimes(dir, now, now)
}

// prune removes binaries of other source states unused for a day, so the
// cache holds only what recent runs in any checkout used.
func prune(cache, keep string) {
	entries, err := os.ReadDir(cache)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if name == keep || name == keep+".lock" {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < 24*time.Hour {
			continue
		}
		os.RemoveAll(filepath.Join(cache, name))
	}
}
