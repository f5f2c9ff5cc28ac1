package hostile_test

// Authorisation and start-up integrity, attacked through the real binary
// over real sockets: an open server must not hand out admin tokens, a web
// page must not append, a revoked token must not keep a stream, every
// refusal leaves a trace, the token CLI never writes somewhere unexpected,
// and the server does not start over a history it cannot vouch for.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

var authzClient = &http.Client{Timeout: 15 * time.Second}

// authzResp is a finished exchange.
type authzResp struct {
	status int
	header http.Header
	body   []byte
}

func (r authzResp) detail() string {
	var p struct{ Detail string }
	json.Unmarshal(r.body, &p)
	return p.Detail
}

// authzDo sends one request. hdr holds header pairs; a name given twice is
// sent twice.
func authzDo(t *testing.T, method, url, body string, hdr ...string) authzResp {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := authzClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return authzResp{res.StatusCode, res.Header, b}
}

func authzBearer(secret string) []string { return []string{"Authorization", "Bearer " + secret} }

// authzCLI runs the binary with args in dir (the working directory) and
// returns its exit code, stdout and stderr.
func authzCLI(t *testing.T, dir string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(e2e.Binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "AUDIT_STREAM_DATA=", "AUDIT_STREAM_URL=", "AUDIT_STREAM_TOKEN=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// authzToken creates a token with the CLI, in the data directory of a
// running server, and returns its secret and id.
func authzToken(t *testing.T, data string, args ...string) (secret, id string) {
	t.Helper()
	code, out, errs := authzCLI(t, t.TempDir(), append([]string{"token", "create", "--data", data}, args...)...)
	if code != 0 {
		t.Fatalf("token create %v: exit %d: %s", args, code, errs)
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "id:") {
		t.Fatalf("token create output: %q", out)
	}
	return lines[0], strings.TrimSpace(strings.TrimPrefix(lines[1], "id:"))
}

// authzCount is the number of events the server holds.
func authzCount(t *testing.T, url string, hdr ...string) int64 {
	t.Helper()
	r := authzDo(t, "GET", url+"/stats", "", hdr...)
	var st struct {
		Count int64 `json:"count"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &st) != nil {
		t.Fatalf("GET /stats: %d %s", r.status, r.body)
	}
	return st.Count
}

// authzMetric reads one unlabelled counter from /metrics.
func authzMetric(t *testing.T, url, name string, hdr ...string) float64 {
	t.Helper()
	r := authzDo(t, "GET", url+"/metrics", "", hdr...)
	if r.status != 200 {
		t.Fatalf("GET /metrics: %d %s", r.status, r.body)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindSubmatch(r.body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// authzWaitLog waits until the server's log matches re.
func authzWaitLog(t *testing.T, p *e2e.Process, re string) {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for !rx.MatchString(p.Log()) {
		if time.Now().After(deadline) {
			t.Fatalf("server log never matched %q:\n%s", re, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Item 9. With no tokens the server runs open, but its admin API does not:
// the first caller could otherwise mint an admin token and lock every
// producer out. The first token, made on the host, is logged at WARN by
// the CLI and by the server, with the new auth mode.
func TestOpenModeAdminAPIClosed(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, "")
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/admin/tokens", `{"roles":["admin"],"name":"takeover"}`},
		{"POST", "/admin/tokens", `{"roles":["producer"],"sources":["billing"]}`},
		{"GET", "/admin/tokens", ""},
		{"DELETE", "/admin/tokens/tok_000000000000", ""},
	} {
		r := authzDo(t, c.method, p.URL+c.path, c.body, "Content-Type", "application/json")
		if r.status != http.StatusForbidden || r.header.Get("Content-Type") != "application/problem+json" ||
			!strings.Contains(r.detail(), "audit-stream token create --role admin") {
			t.Errorf("%s %s on an open server: %d %s %s; want 403 problem+json telling how to create the first admin token",
				c.method, c.path, r.status, r.header.Get("Content-Type"), r.body)
		}
	}
	// Nothing was created: the server is still open, and appends still work.
	var idx struct{ Auth string }
	json.Unmarshal(authzDo(t, "GET", p.URL+"/", "").body, &idx)
	if idx.Auth != "off" {
		t.Fatalf(`GET / says "auth":%q after the refused admin calls, want "off"`, idx.Auth)
	}
	if r := authzDo(t, "POST", p.URL+"/events", `{"kind":"other","source":"s"}`, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("open append: %d %s", r.status, r.body)
	}

	// The first token, on the host, while the server runs.
	code, out, errs := authzCLI(t, t.TempDir(), "token", "create", "--role", "admin", "--name", "ops", "--data", dir)
	if code != 0 {
		t.Fatalf("token create: exit %d: %s", code, errs)
	}
	if !regexp.MustCompile(`level=WARN .*auth=on`).MatchString(errs) {
		t.Errorf("the CLI did not warn that auth is now on:\n%s", errs)
	}
	admin := strings.SplitN(out, "\n", 2)[0]
	if r := authzDo(t, "GET", p.URL+"/events", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("read without a token after the first token: %d", r.status)
	}
	authzWaitLog(t, p, `level=WARN msg="first API token created.*auth=on`)
	r := authzDo(t, "POST", p.URL+"/admin/tokens", `{"roles":["reader"]}`, append(authzBearer(admin), "Content-Type", "application/json")...)
	if r.status != 201 {
		t.Fatalf("admin API with the first admin token: %d %s", r.status, r.body)
	}
	if n := strings.Count(p.Log(), "first API token created"); n != 1 {
		t.Errorf("the first token was logged %d times, want once:\n%s", n, p.Log())
	}
}

// Item 10. A web page can make a browser POST text/plain, a form or
// multipart anywhere without asking. Appends take JSON (NDJSON for batches)
// or no Content-Type, and refuse requests a browser marks cross-site.
func TestCrossSitePostsRefused(t *testing.T) {
	t.Parallel()
	p := e2e.Start(t, t.TempDir(), "")
	const one = `{"kind":"other","source":"web"}`
	const arr = `[{"kind":"other","source":"web"}]`
	const nd = "{\"kind\":\"other\",\"source\":\"web\"}\n"
	refused := []struct {
		name, path, body string
		hdr              []string
		status           int
	}{
		{"text/plain", "/events", one, []string{"Content-Type", "text/plain"}, 415},
		{"text/plain charset", "/events", one, []string{"Content-Type", "text/plain;charset=UTF-8"}, 415},
		{"form", "/events", one, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"multipart", "/events", "--x\r\n\r\n" + one + "\r\n--x--\r\n", []string{"Content-Type", "multipart/form-data; boundary=x"}, 415},
		{"NDJSON on a single append", "/events", one, []string{"Content-Type", "application/x-ndjson"}, 415},
		{"not UTF-8", "/events", one, []string{"Content-Type", "application/json; charset=iso-8859-1"}, 415},
		{"unparsable", "/events", one, []string{"Content-Type", "json"}, 415},
		{"two Content-Types", "/events", one, []string{"Content-Type", "application/json", "Content-Type", "text/plain"}, 415},
		{"batch text/plain", "/events/batch", arr, []string{"Content-Type", "text/plain"}, 415},
		{"batch form", "/events/batch", arr, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"batch multipart", "/events/batch", arr, []string{"Content-Type", "multipart/form-data; boundary=x"}, 415},
		{"cross-site browser", "/events", one, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, 403},
		{"same-site browser", "/events", one, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "same-site"}, 403},
		{"cross-site browser, no type", "/events/batch", arr, []string{"Sec-Fetch-Site", "cross-site"}, 403},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			before := authzCount(t, p.URL)
			r := authzDo(t, "POST", p.URL+c.path, c.body, c.hdr...)
			if r.status != c.status || r.header.Get("Content-Type") != "application/problem+json" || r.detail() == "" {
				t.Fatalf("%d %s %s; want %d problem+json with a detail", r.status, r.header.Get("Content-Type"), r.body, c.status)
			}
			if after := authzCount(t, p.URL); after != before {
				t.Fatalf("a refused append wrote: %d events, then %d", before, after)
			}
		})
	}
	accepted := []struct {
		name, path, body string
		hdr              []string
	}{
		{"application/json", "/events", one, []string{"Content-Type", "application/json"}},
		{"json with utf-8", "/events", one, []string{"Content-Type", "application/json; charset=utf-8"}},
		{"+json", "/events", one, []string{"Content-Type", "application/vnd.audit+json"}},
		{"no Content-Type", "/events", one, nil},
		{"batch JSON", "/events/batch", arr, []string{"Content-Type", "application/json"}},
		{"batch NDJSON", "/events/batch", nd, []string{"Content-Type", "application/x-ndjson"}},
		{"same-origin browser", "/events", one, []string{"Content-Type", "application/json", "Sec-Fetch-Site", "same-origin"}},
	}
	for _, c := range accepted {
		if r := authzDo(t, "POST", p.URL+c.path, c.body, c.hdr...); r.status != 201 {
			t.Errorf("%s: %d %s; want 201", c.name, r.status, r.body)
		}
	}
	// The CLI (and so the client package) sends what the server takes.
	if code, _, errs := authzCLI(t, t.TempDir(), "append", "--url", p.URL, "--kind", "other", "--source", "cli"); code != 0 {
		t.Errorf("audit-stream append: exit %d: %s", code, errs)
	}
}

// authzStream opens GET /stream and returns a channel that yields every line
// it reads and is closed when the stream ends.
func authzStream(t *testing.T, url string, hdr ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, b)
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return lines
}

// authzStreamEnd waits for a stream to end and returns its last comment
// and when it ended; ok false if it did not end within limit.
func authzStreamEnd(lines <-chan string, limit time.Duration) (last string, at time.Time, ok bool) {
	timeout := time.After(limit)
	for {
		select {
		case l, open := <-lines:
			if !open {
				return last, time.Now(), true
			}
			if strings.HasPrefix(l, ":") && !strings.Contains(l, "keep-alive") {
				last = l
			}
		case <-timeout:
			return last, time.Time{}, false
		}
	}
}

// Item 11. A stream lives as long as its token: revoked (by another
// process, while the stream is idle) or expired, it ends within a second
// or two with a final comment saying why. A stream whose token is still
// good stays open.
func TestStreamEndsWithItsToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, "", "--heartbeat", "500ms")
	revokeMe, revokeID := authzToken(t, dir, "--role", "reader", "--name", "to-revoke")
	keep, _ := authzToken(t, dir, "--role", "reader", "--name", "kept")
	expiring, expID := authzToken(t, dir, "--role", "reader", "--name", "short", "--expires", "3s")
	expiresAt := time.Now().Add(3 * time.Second)

	revoked := authzStream(t, p.URL+"/stream", authzBearer(revokeMe)...)
	expired := authzStream(t, p.URL+"/stream?access_token="+expiring)
	kept := authzStream(t, p.URL+"/stream", authzBearer(keep)...)
	time.Sleep(300 * time.Millisecond) // all three are open and idle

	if code, _, errs := authzCLI(t, t.TempDir(), "token", "revoke", revokeID, "--data", dir); code != 0 {
		t.Fatalf("token revoke: exit %d: %s", code, errs)
	}
	revokedAt := time.Now()
	last, endedAt, ok := authzStreamEnd(revoked, 6*time.Second)
	if !ok {
		t.Fatal("the stream of a revoked token was still open 6 s after the revocation")
	}
	t.Logf("revoked token's stream ended %s after the revocation", endedAt.Sub(revokedAt).Round(time.Millisecond))
	if d := endedAt.Sub(revokedAt); d > 3*time.Second {
		t.Errorf("the revoked token's stream ended %s after the revocation; want within a second or two", d)
	}
	if !strings.Contains(last, revokeID) || !strings.Contains(last, "revoked") {
		t.Errorf("last comment %q does not say the token %s was revoked", last, revokeID)
	}

	last, endedAt, ok = authzStreamEnd(expired, time.Until(expiresAt)+6*time.Second)
	if !ok {
		t.Fatal("the stream of an expired token was still open 6 s after the expiry")
	}
	t.Logf("expired token's stream ended %s after the expiry", endedAt.Sub(expiresAt).Round(time.Millisecond))
	if d := endedAt.Sub(expiresAt); d > 3*time.Second {
		t.Errorf("the expired token's stream ended %s after the expiry; want within a second or two", d)
	}
	if !strings.Contains(last, expID) || !strings.Contains(last, "expired") {
		t.Errorf("last comment %q does not say the token %s expired", last, expID)
	}

	// The good token's stream is still open, and still delivers.
	admin, _ := authzToken(t, dir, "--role", "admin")
	if r := authzDo(t, "POST", p.URL+"/events", `{"kind":"other","source":"s"}`, append(authzBearer(admin), "Content-Type", "application/json")...); r.status != 201 {
		t.Fatalf("append: %d %s", r.status, r.body)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l, open := <-kept:
			if !open {
				t.Fatal("the stream of a valid token ended")
			}
			if strings.HasPrefix(l, "data: ") {
				return
			}
		case <-deadline:
			t.Fatal("the stream of a valid token did not deliver the new event")
		}
	}
}

// Item 12. Every refusal is answered with a detail, logged with its status
// and path (never the secret) and counted, including a producer's source
// that its token does not allow; several Authorization headers are a 400.
func TestEveryRefusalLoggedAndCounted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := e2e.Start(t, dir, "")
	prod, prodID := authzToken(t, dir, "--role", "producer", "--source", "billing")
	read, _ := authzToken(t, dir, "--role", "reader")
	admin, _ := authzToken(t, dir, "--role", "admin")
	adm := authzBearer(admin)
	ctJSON := []string{"Content-Type", "application/json"}
	cases := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		metric, logged           string
	}{
		{"producer, foreign source", "POST", "/events", `{"kind":"other","source":"shipping"}`,
			append(authzBearer(prod), ctJSON...), 403, "audit_stream_auth_forbidden_total", `status=403 .*path=/events .*token_id=` + prodID},
		{"producer, foreign source in a batch", "POST", "/events/batch", `[{"kind":"other","source":"billing"},{"kind":"other","source":"shipping"}]`,
			append(authzBearer(prod), ctJSON...), 403, "audit_stream_auth_forbidden_total", `status=403 .*path=/events/batch .*token_id=` + prodID},
		{"reader appends", "POST", "/events", `{"kind":"other","source":"billing"}`,
			append(authzBearer(read), ctJSON...), 403, "audit_stream_auth_forbidden_total", `status=403 .*path=/events `},
		{"producer reads", "GET", "/events", "", authzBearer(prod), 403, "audit_stream_auth_forbidden_total", `status=403 .*path=/events `},
		{"no token", "GET", "/stats", "", nil, 401, "audit_stream_auth_denied_total", `status=401 .*path=/stats`},
		{"unknown token", "GET", "/verify", "", authzBearer("ast_forged"), 401, "audit_stream_auth_denied_total", `status=401 .*path=/verify`},
		{"not a bearer", "GET", "/export", "", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401, "audit_stream_auth_denied_total", `status=401 .*path=/export`},
		{"two Authorization headers", "GET", "/events", "", append(authzBearer(read), authzBearer(admin)...), 400,
			"audit_stream_auth_malformed_total", `status=400 .*path=/events `},
		{"the same token twice", "POST", "/events", `{"kind":"other","source":"billing"}`,
			append(append(authzBearer(prod), authzBearer(prod)...), ctJSON...), 400, "audit_stream_auth_malformed_total", `status=400 .*path=/events `},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := authzMetric(t, p.URL, c.metric, adm...)
			events := authzCount(t, p.URL, adm...)
			logLines := strings.Count(p.Log(), "access denied")
			r := authzDo(t, c.method, p.URL+c.path, c.body, c.hdr...)
			if r.status != c.status || r.header.Get("Content-Type") != "application/problem+json" || r.detail() == "" {
				t.Fatalf("%d %s %s; want %d problem+json with a detail", r.status, r.header.Get("Content-Type"), r.body, c.status)
			}
			if after := authzMetric(t, p.URL, c.metric, adm...); after != before+1 {
				t.Errorf("%s went from %v to %v, want +1", c.metric, before, after)
			}
			if n := authzCount(t, p.URL, adm...); n != events {
				t.Errorf("a refused request wrote: %d events, then %d", events, n)
			}
			if strings.Count(p.Log(), "access denied") != logLines+1 {
				t.Fatalf("refusal not logged once:\n%s", p.Log())
			}
			lines := strings.Split(strings.TrimSpace(p.Log()), "\n")
			var last string
			for _, l := range lines {
				if strings.Contains(l, "access denied") {
					last = l
				}
			}
			if !regexp.MustCompile(c.logged).MatchString(last) {
				t.Errorf("log line %q does not match %q", last, c.logged)
			}
		})
	}
	for _, secret := range []string{prod, read, admin} {
		if strings.Contains(p.Log(), secret) {
			t.Fatal("a secret reached the log")
		}
	}
}

// Item 13. The token CLI on a --data that holds no log — a typo, the wrong
// working directory — must not quietly create a database the server never
// reads: it says which directory it used and exits 2, unless --init.
func TestTokenCLINeverWritesSomewhereUnexpected(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(root string) string // returns --data ("" for none)
	}{
		{"missing directory", func(root string) string { return filepath.Join(root, "typo") }},
		{"empty directory", func(root string) string {
			os.Mkdir(filepath.Join(root, "empty"), 0o700)
			return filepath.Join(root, "empty")
		}},
		{"relative path", func(root string) string { return "relative/data" }},
		{"default in the working directory", func(root string) string { return "" }},
	}
	commands := [][]string{
		{"token", "create", "--role", "admin"},
		{"token", "list"},
		{"token", "revoke", "tok_000000000000"},
	}
	for _, c := range cases {
		for _, cmd := range commands {
			t.Run(c.name+"/"+cmd[1], func(t *testing.T) {
				root := t.TempDir()
				data := c.setup(root)
				args := cmd
				want := data
				if data != "" {
					args = append(append([]string{}, cmd...), "--data", data)
				} else {
					want = "audit-stream-data"
				}
				if !filepath.IsAbs(want) {
					want = filepath.Join(root, want)
				}
				before := authzTree(t, root)
				code, out, errs := authzCLI(t, root, args...)
				if code != 2 {
					t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", code, out, errs)
				}
				if !strings.Contains(errs, want) || !strings.Contains(errs, "--init") {
					t.Errorf("stderr does not name the data directory %s and --init:\n%s", want, errs)
				}
				if after := authzTree(t, root); after != before {
					t.Errorf("the refused command wrote:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		}
	}
	// --init creates the log on purpose; then no --init is needed.
	root := t.TempDir()
	data := filepath.Join(root, "new")
	code, out, errs := authzCLI(t, root, "token", "create", "--role", "admin", "--data", data, "--init")
	if code != 0 || !strings.HasPrefix(out, "ast_") || !strings.Contains(errs, data) {
		t.Fatalf("create --init: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(data, sqlite.FileName)); err != nil {
		t.Fatalf("--init made no database: %v", err)
	}
	code, out, errs = authzCLI(t, root, "token", "list", "--data", data)
	if code != 0 || !strings.Contains(out, "admin") || !strings.Contains(errs, data) {
		t.Fatalf("list after --init: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	// The server starts on what --init made and requires the token.
	p := e2e.Start(t, data, "")
	if r := authzDo(t, "GET", p.URL+"/events", ""); r.status != 401 {
		t.Fatalf("server on the --init directory: read without a token: %d", r.status)
	}
}

// authzTree lists every path under root.
func authzTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(path string, info os.FileInfo, err error) error {
		if err == nil {
			fmt.Fprintf(&b, "%s %v\n", path, info.IsDir())
		}
		return nil
	})
	return b.String()
}

// authzWaitCheckpoint waits until the signed checkpoint covers size events.
func authzWaitCheckpoint(t *testing.T, url string, size int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := authzDo(t, "GET", url+"/checkpoint", "")
		lines := strings.Split(string(r.body), "\n")
		if len(lines) > 1 {
			if n, err := strconv.ParseInt(lines[1], 10, 64); err == nil && n >= size {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no checkpoint of size %d: %s", size, r.body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// authzAppend appends n events.
func authzAppend(t *testing.T, url string, n int) {
	t.Helper()
	for i := range n {
		if r := authzDo(t, "POST", url+"/events", fmt.Sprintf(`{"kind":"other","source":"s","payload":{"i":%d}}`, i),
			"Content-Type", "application/json"); r.status != 201 {
			t.Fatalf("append: %d %s", r.status, r.body)
		}
	}
}

// authzSQL runs statements on a stopped server's database.
func authzSQL(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// authzRefused runs the server and expects it to refuse to start; it
// returns what the server wrote. A server that starts listening fails the
// test at once.
func authzRefused(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(e2e.Binary(t), append([]string{"serve", "--addr", "127.0.0.1:0", "--data", dir}, args...)...)
	cmd.Env = append(os.Environ(), "HOST=", "PORT=", "AUDIT_STREAM_DATA=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		out.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "msg=listening") {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the server started where it must refuse:\n%s", out.String())
		}
	}
	if err := cmd.Wait(); err == nil {
		t.Fatalf("the server exited 0 where it must refuse to start:\n%s", out.String())
	}
	return out.String()
}

// authzCopyDir copies the regular files of a stopped server's data
// directory: a backup.
func authzCopyDir(t *testing.T, from, to string) {
	t.Helper()
	os.RemoveAll(to)
	if err := os.MkdirAll(to, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Item 14. The server refuses to start over a history it cannot vouch for:
// events with no stored checkpoint (someone deleted it, as a rewrite would),
// a log shorter than its checkpoint, or — with a checkpoint copy outside
// the data directory — a data directory restored from an older copy. An
// explicit recovery flag overrides, at ERROR and on record.
func TestStartupIntegrity(t *testing.T) {
	t.Parallel()
	t.Run("checkpoint deleted", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := e2e.Start(t, dir, "", "--checkpoint-interval", "20ms")
		authzAppend(t, p.URL, 10)
		authzWaitCheckpoint(t, p.URL, 10)
		p.Terminate(t)
		authzSQL(t, dir, `DELETE FROM meta WHERE key = 'checkpoint'`)
		out := authzRefused(t, dir)
		if !strings.Contains(out, "no signed checkpoint") || !strings.Contains(out, "--recover-resign") {
			t.Fatalf("refusal does not say why and how to recover:\n%s", out)
		}
		// The recovery start: at ERROR, and on record in the database.
		p = e2e.Start(t, dir, "", "--recover-resign")
		if !regexp.MustCompile(`level=ERROR .*no signed checkpoint`).MatchString(p.Log()) {
			t.Fatalf("recovery not logged at ERROR:\n%s", p.Log())
		}
		authzWaitCheckpoint(t, p.URL, 10)
		p.Terminate(t)
		db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
		if err != nil {
			t.Fatal(err)
		}
		var rec string
		err = db.QueryRow(`SELECT CAST(value AS TEXT) FROM meta WHERE key = 'recoveries'`).Scan(&rec)
		db.Close()
		if err != nil || !strings.Contains(rec, "no signed checkpoint") || !strings.Contains(rec, `"events":10`) {
			t.Fatalf("recovery record: %q, %v", rec, err)
		}
		// Signed again, the log starts normally.
		e2e.Start(t, dir, "").Terminate(t)
	})
	t.Run("log shorter than its checkpoint", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		p := e2e.Start(t, dir, "", "--checkpoint-interval", "20ms")
		authzAppend(t, p.URL, 10)
		authzWaitCheckpoint(t, p.URL, 10)
		p.Terminate(t)
		authzSQL(t, dir, `DELETE FROM events WHERE event_id > 7`)
		if out := authzRefused(t, dir); !strings.Contains(out, "covers 10 events but the log holds") {
			t.Fatalf("refusal does not say the log is short:\n%s", out)
		}
	})
	t.Run("data directory restored from an older copy", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		dir, backup := filepath.Join(root, "data"), filepath.Join(root, "backup")
		keep := filepath.Join(root, "outside", "checkpoint")
		os.MkdirAll(filepath.Dir(keep), 0o700)
		p := e2e.Start(t, dir, "", "--checkpoint-interval", "20ms", "--checkpoint-copy", keep)
		authzAppend(t, p.URL, 5)
		authzWaitCheckpoint(t, p.URL, 5)
		p.Terminate(t)
		authzCopyDir(t, dir, backup)
		p = e2e.Start(t, dir, "", "--checkpoint-interval", "20ms", "--checkpoint-copy", keep)
		authzAppend(t, p.URL, 5) // acknowledged, then lost by the restore
		authzWaitCheckpoint(t, p.URL, 10)
		p.Terminate(t)
		authzCopyDir(t, backup, dir)

		out := authzRefused(t, dir, "--checkpoint-copy", keep)
		if !strings.Contains(out, "covers 10 events but the log holds only 5") {
			t.Fatalf("refusal does not say the log is older than the last checkpoint:\n%s", out)
		}
		p = e2e.Start(t, dir, "", "--checkpoint-copy", keep, "--recover-resign")
		if !strings.Contains(p.Log(), "level=ERROR") {
			t.Fatalf("recovery not logged at ERROR:\n%s", p.Log())
		}
		p.Terminate(t)
		// The copy now holds the re-signed, shorter log: later starts pass.
		e2e.Start(t, dir, "", "--checkpoint-copy", keep).Terminate(t)
	})
}
