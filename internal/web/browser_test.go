package web_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/e2e"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// The browser tests drive Debian's chromium through the DevTools protocol
// against the real binary. Without chromium they skip, unless
// AUDIT_STREAM_TEST_BROWSER=1 (as .ci/run sets) makes that a failure.
// Screenshots go to $AUDIT_STREAM_TEST_ARTIFACTS, else a temporary directory.

func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AUDIT_STREAM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("AUDIT_STREAM_TEST_BROWSER") == "1" {
		t.Fatal("AUDIT_STREAM_TEST_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH; install it or set AUDIT_STREAM_CHROMIUM")
	return ""
}

func artifacts(t *testing.T) string {
	if d := os.Getenv("AUDIT_STREAM_TEST_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// browser starts a fresh headless chromium and fails the test on any
// uncaught exception or console error in the page.
func browser(t *testing.T) context.Context {
	t.Helper()
	// A fresh profile per test. Not t.TempDir: chromium's helper processes
	// may still write to it for a moment after the browser is gone.
	profile, err := os.MkdirTemp("", "audit-stream-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 860),
		// A loaded CI machine can take a while to start a browser.
		chromedp.WSURLReadTimeout(90*time.Second),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	var mu sync.Mutex
	var pageErrors []string
	chromedp.ListenTarget(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			mu.Lock()
			pageErrors = append(pageErrors, ev.ExceptionDetails.Error())
			mu.Unlock()
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				mu.Lock()
				pageErrors = append(pageErrors, "console.error: "+strings.Join(parts, " "))
				mu.Unlock()
			}
		}
	})
	if err := chromedp.Run(ctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start chromium: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, e := range pageErrors {
			t.Errorf("page error: %s", e)
		}
	})
	return ctx
}

// run runs browser actions with a deadline.
func run(t *testing.T, ctx context.Context, d time.Duration, what string, actions ...chromedp.Action) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Run(tctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	run(t, ctx, 30*time.Second, "screenshot", chromedp.FullScreenshot(&png, 100))
	path := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

func post(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url+"/events", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("append: %s %s", resp.Status, b)
	}
}

// waitCheckpoint waits until the served checkpoint covers n events.
func waitCheckpoint(t *testing.T, url string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/checkpoint")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			lines := strings.Split(string(b), "\n")
			var size int
			if len(lines) > 1 {
				fmt.Sscan(lines[1], &size)
			}
			if size >= n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no checkpoint of %d events within 10s", n)
}

func open(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	run(t, ctx, 60*time.Second, "open /ui/",
		chromedp.Navigate(url+"/ui/"),
		chromedp.WaitVisible(`body[data-ready="true"]`, chromedp.ByQuery),
	)
}

// rowKinds lists the kinds of the table's rows, top to bottom.
func rowIDs(t *testing.T, ctx context.Context) []int {
	t.Helper()
	var ids []int
	run(t, ctx, 30*time.Second, "read rows", chromedp.Evaluate(`[...document.querySelectorAll("#rows tr")].map(r => Number(r.dataset.id))`, &ids))
	return ids
}

// waitRows waits until the table shows exactly want (top to bottom).
func waitRows(t *testing.T, ctx context.Context, d time.Duration, want []int) {
	t.Helper()
	js := fmt.Sprintf(`JSON.stringify([...document.querySelectorAll("#rows tr")].map(r => Number(r.dataset.id))) === %q`, mustJSON(want))
	tctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if err := chromedp.Run(tctx, chromedp.Poll(js, nil, chromedp.WithPollingInterval(10*time.Millisecond))); err != nil {
		t.Fatalf("rows: want %v within %v, have %v (%v)", want, d, rowIDs(t, ctx), err)
	}
}

// setValue sets an input's value (chromedp.SetValue refuses "").
func setValue(sel, v string) chromedp.Action {
	return chromedp.Evaluate(fmt.Sprintf(`document.querySelector(%q).value = %q, true`, sel, v), nil)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkEvent clicks event id and waits for the in-browser check's verdict.
func checkEvent(t *testing.T, ctx context.Context, id int) (state, text string) {
	t.Helper()
	run(t, ctx, 30*time.Second, fmt.Sprintf("check event %d", id),
		chromedp.Click(fmt.Sprintf(`#rows tr[data-id="%d"]`, id), chromedp.ByQuery),
		chromedp.WaitVisible(fmt.Sprintf(`#detail-title`), chromedp.ByQuery),
		chromedp.Poll(fmt.Sprintf(`document.getElementById("detail-title").textContent === "Event %d" && document.getElementById("check").dataset.state !== "pending"`, id), nil),
		chromedp.AttributeValue(`#check`, "data-state", &state, nil, chromedp.ByQuery),
		chromedp.Text(`#check-text`, &text, chromedp.ByQuery),
	)
	return state, text
}

func TestDashboardLive(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	srv := e2e.Start(t, t.TempDir(), "", "--checkpoint-interval", "100ms")
	// Numbers a double cannot hold and text beyond ASCII: the page must
	// re-hash exactly what the server hashed.
	post(t, srv.URL, `{"kind":"request_denied","source":"policy-engine","payload":{"user":"u-17","amount":12345678901234567890123,"ratio":1e-05,"big":1e+300,"note":"café ☕ 😀 \u0000 </script>","nested":{"b":[1,2.5,-0.0],"a":null}}}`)
	post(t, srv.URL, `{"kind":"tool_invocation_denied","source":"gateway","payload":{"tool":"shell","user":"u-3"}}`)
	open(t, ctx, srv.URL)
	waitRows(t, ctx, 30*time.Second, []int{2, 1})

	// Live: each appended event shows on top within a second.
	for i := 3; i <= 6; i++ {
		kind, source := "request_denied", "policy-engine"
		if i%2 == 0 {
			kind, source = "tool_invocation_denied", "gateway"
		}
		post(t, srv.URL, fmt.Sprintf(`{"kind":%q,"source":%q,"payload":{"i":%d,"user":"u-%d"}}`, kind, source, i, i))
		want := []int{}
		for j := i; j >= 1; j-- {
			want = append(want, j)
		}
		waitRows(t, ctx, time.Second, want)
	}

	// The check is green, for the event with the awkward payload too.
	for _, id := range []int{1, 2, 6} {
		if state, text := checkEvent(t, ctx, id); state != "ok" || !strings.Contains(text, "verified in this browser") {
			t.Fatalf("event %d: %s %q", id, state, text)
		}
	}
	var steps []string
	run(t, ctx, 30*time.Second, "steps", chromedp.Evaluate(`[...document.querySelectorAll("#steps li")].map(li => li.dataset.state + ": " + li.textContent)`, &steps))
	if len(steps) != 4 || !strings.Contains(steps[3], "inclusion proof") {
		t.Fatalf("steps: %q", steps)
	}
	var json1 string
	run(t, ctx, 30*time.Second, "json", chromedp.Click(`#rows tr[data-id="1"]`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("detail-title").textContent === "Event 1"`, nil),
		chromedp.Text(`#json`, &json1, chromedp.ByQuery))
	if !strings.Contains(json1, "12345678901234567890123") || !strings.Contains(json1, "1e+300") {
		t.Fatalf("the JSON view must keep number text: %s", json1)
	}
	run(t, ctx, 30*time.Second, "status strip",
		chromedp.Click(`#run-verify`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("st-verify").dataset.state === "ok"`, nil),
		chromedp.Poll(`/^6 events/.test(document.getElementById("st-checkpoint").textContent)`, nil),
	)
	var strip string
	run(t, ctx, 30*time.Second, "strip", chromedp.Text(`#strip`, &strip, chromedp.ByQuery))
	for _, want := range []string{"valid, 6 checked", "#6", "off (open)"} {
		if !strings.Contains(strip, want) {
			t.Errorf("status strip lacks %q: %s", want, strip)
		}
	}
	screenshot(t, ctx, "dashboard-live.png")

	// Filters reload from the query API and narrow the stream.
	run(t, ctx, 30*time.Second, "filter by kind",
		setValue(`#f-kind`, "tool_invocation_denied"),
		chromedp.Click(`#filters button[type=submit]`, chromedp.ByQuery))
	waitRows(t, ctx, 30*time.Second, []int{6, 4, 2})
	post(t, srv.URL, `{"kind":"request_denied","source":"gateway"}`)         // 7: filtered out
	post(t, srv.URL, `{"kind":"tool_invocation_denied","source":"gateway"}`) // 8
	waitRows(t, ctx, time.Second, []int{8, 6, 4, 2})
	run(t, ctx, 30*time.Second, "filter by source",
		setValue(`#f-kind`, ""),
		setValue(`#f-source`, "gateway"),
		chromedp.Click(`#filters button[type=submit]`, chromedp.ByQuery))
	waitRows(t, ctx, 30*time.Second, []int{8, 7, 6, 4, 2})
	// An unknown kind is the server's 422, shown, not an empty table.
	run(t, ctx, 30*time.Second, "unknown kind",
		setValue(`#f-kind`, "made_up"),
		chromedp.Click(`#filters button[type=submit]`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("message").textContent.includes('unknown kind "made_up"')`, nil))
	run(t, ctx, 30*time.Second, "clear filters",
		setValue(`#f-kind`, ""),
		setValue(`#f-source`, ""),
		chromedp.Click(`#filters button[type=submit]`, chromedp.ByQuery))
	waitRows(t, ctx, 30*time.Second, []int{8, 7, 6, 5, 4, 3, 2, 1})

	// Pause holds new events; resume shows them.
	run(t, ctx, 30*time.Second, "pause", chromedp.Click(`#pause`, chromedp.ByQuery))
	post(t, srv.URL, `{"kind":"other","source":"ops"}`) // 9
	run(t, ctx, 30*time.Second, "held", chromedp.Poll(`document.getElementById("pause").textContent === "Resume (1)"`, nil))
	if ids := rowIDs(t, ctx); ids[0] != 8 {
		t.Fatalf("paused table changed: %v", ids)
	}
	run(t, ctx, 30*time.Second, "resume", chromedp.Click(`#pause`, chromedp.ByQuery))
	waitRows(t, ctx, time.Second, []int{9, 8, 7, 6, 5, 4, 3, 2, 1})

	// Search by payload field (filtered in the page when the server
	// does not filter).
	run(t, ctx, 30*time.Second, "search",
		setValue(`#s-payload`, "tool=shell"),
		chromedp.Click(`#search button[type=submit]`, chromedp.ByQuery))
	waitRows(t, ctx, 30*time.Second, []int{2})
	run(t, ctx, 30*time.Second, "search nested",
		setValue(`#s-payload`, "payload.user=u-17"),
		chromedp.Click(`#search button[type=submit]`, chromedp.ByQuery))
	waitRows(t, ctx, 30*time.Second, []int{1})
	post(t, srv.URL, `{"kind":"other","source":"ops"}`) // 10, held while searching
	run(t, ctx, 30*time.Second, "back to live", chromedp.Click(`#back-live`, chromedp.ByQuery))
	waitRows(t, ctx, 30*time.Second, []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1})

	// Keyboard: Enter on a focused row opens and checks it; Escape closes.
	run(t, ctx, 30*time.Second, "keyboard",
		chromedp.Focus(`#rows tr[data-id="5"]`, chromedp.ByQuery),
		chromedp.KeyEvent("\r"),
		chromedp.Poll(`document.getElementById("detail-title").textContent === "Event 5" && document.getElementById("check").dataset.state === "ok"`, nil),
		chromedp.KeyEvent("\x1b"),
		chromedp.Poll(`document.getElementById("detail").hidden && document.activeElement.dataset.id === "5"`, nil),
	)

	// Dark scheme and a phone-sized screen.
	run(t, ctx, 30*time.Second, "dark phone",
		emulation.SetEmulatedMedia().WithFeatures([]*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}),
		emulation.SetDeviceMetricsOverride(390, 844, 2, true),
		chromedp.Click(`#rows tr[data-id="1"]`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("check").dataset.state === "ok"`, nil),
	)
	screenshot(t, ctx, "dashboard-dark-phone.png")
}

// TestDashboardCanonicalVectors runs the page's canonical JSON and hash
// code over the compatibility vectors from the original service.
func TestDashboardCanonicalVectors(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	srv := e2e.Start(t, t.TempDir(), "")
	open(t, ctx, srv.URL)
	vectors, err := os.ReadFile("../../testdata/canonical-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	export, err := os.ReadFile("../../testdata/seed-export.json")
	if err != nil {
		t.Fatal(err)
	}
	// Each vector's canonical text, re-read and re-serialised by the page,
	// must come out byte for byte with the original's hash; the seed
	// export (indented, keys unsorted, non-ASCII literal) must re-hash to
	// its stored hashes.
	js := fmt.Sprintf(`(async () => {
		const c = await import("./canon.js");
		const p = await import("./proof.js");
		const out = [];
		for (const v of JSON.parse(%s).vectors) {
			const ev = c.parse(v.canonical);
			const again = c.canonical(ev);
			if (again !== v.canonical) out.push(v.name + ": re-serialised as " + again);
			const h = await p.hashText(c.eventBody(ev));
			if (h !== v.hash) out.push(v.name + ": hash " + h);
		}
		for (const ev of c.parse(%s).items) {
			const h = await p.hashText(c.eventBody(ev));
			if (h !== c.field(ev, "hash")) out.push("export event " + c.field(ev, "event_id") + ": hash " + h);
		}
		return out;
	})()`, mustJSON(string(vectors)), mustJSON(string(export)))
	var problems []string
	run(t, ctx, 60*time.Second, "vectors", chromedp.Evaluate(js, &problems, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
	for _, p := range problems {
		t.Error(p)
	}
}

// TestDashboardTampered serves a store rewritten behind the server's back
// and expects each rewritten event to turn red with its own reason.
func TestDashboardTampered(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	dir := t.TempDir()
	srv := e2e.Start(t, dir, "", "--checkpoint-interval", "100ms")
	for i := 1; i <= 8; i++ {
		post(t, srv.URL, fmt.Sprintf(`{"kind":"request_denied","source":"svc","payload":{"i":%d,"amount":%d}}`, i, 100*i))
	}
	waitCheckpoint(t, srv.URL, 8)
	if code := srv.Terminate(t); code != 0 {
		t.Fatalf("server exit %d\n%s", code, srv.Log())
	}

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, sqlite.FileName))
	if err != nil {
		t.Fatal(err)
	}
	// Event 3: the payload is changed, nothing else.
	if _, err := db.Exec(`UPDATE events SET payload = ? WHERE event_id = 3`, `{"amount":1,"i":3}`); err != nil {
		t.Fatal(err)
	}
	// Event 6: the payload is changed and its hash recomputed, so it is
	// self-consistent; the next link and the Merkle tree still disagree.
	var e event.Event
	var prev []byte
	if err := db.QueryRow(`SELECT event_id, timestamp, kind, source, prev_hash FROM events WHERE event_id = 6`).Scan(&e.ID, &e.Timestamp, &e.Kind, &e.Source, &prev); err != nil {
		t.Fatal(err)
	}
	e.PrevHash = event.Hash(prev)
	e.Payload = []byte(`{"amount":1,"i":6}`)
	h, _ := e.ComputeHash(nil)
	if _, err := db.Exec(`UPDATE events SET payload = ?, hash = ? WHERE event_id = 6`, e.Payload, h[:]); err != nil {
		t.Fatal(err)
	}
	db.Close()

	srv = e2e.Start(t, dir, "", "--checkpoint-interval", "100ms")
	open(t, ctx, srv.URL)
	waitRows(t, ctx, 30*time.Second, []int{8, 7, 6, 5, 4, 3, 2, 1})
	cases := []struct {
		id     int
		state  string
		reason string
	}{
		{2, "ok", "verified in this browser"},
		{3, "bad", "hash mismatch: event 3's contents do not hash to its hash"},
		{4, "ok", "verified in this browser"}, // its link is to event 3's stored hash, which stands
		{6, "bad", "not in the signed log: event 6's inclusion proof does not lead to the signed checkpoint root"},
		{7, "bad", "chain break: prev_hash does not match event 6's hash"},
	}
	for _, c := range cases {
		state, text := checkEvent(t, ctx, c.id)
		if state != c.state || !strings.Contains(text, c.reason) {
			t.Errorf("event %d: %s %q, want %s %q", c.id, state, text, c.state, c.reason)
		}
		if c.id == 3 {
			screenshot(t, ctx, "dashboard-tampered.png")
		}
	}
	run(t, ctx, 30*time.Second, "verify button",
		chromedp.Click(`#run-verify`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("st-verify").dataset.state === "bad"`, nil))
	var verdict string
	run(t, ctx, 30*time.Second, "verdict", chromedp.Text(`#st-verify`, &verdict, chromedp.ByQuery))
	if !strings.Contains(verdict, "BROKEN at event 3") {
		t.Errorf("/verify verdict: %q", verdict)
	}
}

// TestDashboardWithAuth: the token is entered once, kept in session
// storage, and the page works on a server that requires it.
func TestDashboardWithAuth(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	dir := t.TempDir()
	out, err := exec.Command(e2e.Binary(t), "token", "create", "--init", "--data", dir, "--role", "reader", "--name", "dashboard").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	secret := strings.SplitN(string(out), "\n", 2)[0]
	admin, err := exec.Command(e2e.Binary(t), "token", "create", "--data", dir, "--role", "admin").Output()
	if err != nil {
		t.Fatalf("token create: %v", err)
	}
	srv := e2e.Start(t, dir, "", "--checkpoint-interval", "100ms", "--auth", "required", "--close-verification")
	appendAs := func(body string) {
		req, _ := http.NewRequest("POST", srv.URL+"/events", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+strings.SplitN(string(admin), "\n", 2)[0])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 201 {
			t.Fatalf("append: %s", resp.Status)
		}
	}
	appendAs(`{"kind":"other","source":"ops"}`)
	run(t, ctx, 60*time.Second, "open",
		chromedp.Navigate(srv.URL+"/ui/"),
		chromedp.WaitVisible(`body[data-ready="true"]`, chromedp.ByQuery),
		chromedp.Poll(`document.getElementById("message").textContent.includes("Authentication needed")`, nil),
		chromedp.WaitVisible(`#token`, chromedp.ByQuery),
		setValue(`#token`, secret),
		chromedp.Click(`#auth button[type=submit]`, chromedp.ByQuery),
	)
	waitRows(t, ctx, 30*time.Second, []int{1})
	appendAs(`{"kind":"other","source":"ops"}`)
	waitRows(t, ctx, time.Second, []int{2, 1})
	if state, text := checkEvent(t, ctx, 2); state != "ok" {
		t.Fatalf("check with auth: %s %q", state, text)
	}
	// The token survives a reload of the tab, and only the stream's URL
	// carries it.
	var stored string
	run(t, ctx, 60*time.Second, "reload",
		chromedp.Reload(),
		chromedp.WaitVisible(`body[data-ready="true"]`, chromedp.ByQuery),
		chromedp.Evaluate(`sessionStorage.getItem("audit-stream-token")`, &stored),
	)
	if stored != secret {
		t.Fatalf("session storage holds %q", stored)
	}
	waitRows(t, ctx, 30*time.Second, []int{2, 1})
	var urls []string
	run(t, ctx, 30*time.Second, "urls", chromedp.Evaluate(`performance.getEntriesByType("resource").map(e => e.name).filter(u => u.includes("access_token"))`, &urls))
	for _, u := range urls {
		if !strings.Contains(u, "/stream?") {
			t.Errorf("token in a URL other than the stream's: %s", u)
		}
	}
}

// TestDashboardResumesAfterRestart: the server is killed and restarted on
// the same address; the page reconnects by itself (EventSource with
// Last-Event-ID) and shows what was appended meanwhile, once.
func TestDashboardResumesAfterRestart(t *testing.T) {
	t.Parallel()
	ctx := browser(t)
	dir := t.TempDir()
	srv := e2e.Start(t, dir, "", "--sse-retry", "200ms")
	post(t, srv.URL, `{"kind":"other","source":"ops"}`)
	post(t, srv.URL, `{"kind":"other","source":"ops"}`)
	open(t, ctx, srv.URL)
	waitRows(t, ctx, 30*time.Second, []int{2, 1})
	srv.Kill()
	run(t, ctx, 30*time.Second, "notices", chromedp.Poll(`document.getElementById("st-conn").dataset.state !== "live"`, nil))
	srv = e2e.Start(t, dir, srv.Addr, "--sse-retry", "200ms")
	for range 3 {
		post(t, srv.URL, `{"kind":"other","source":"ops"}`)
	}
	waitRows(t, ctx, 30*time.Second, []int{5, 4, 3, 2, 1})
	run(t, ctx, 30*time.Second, "live again", chromedp.Poll(`document.getElementById("st-conn").dataset.state === "live"`, nil))
	post(t, srv.URL, `{"kind":"other","source":"ops"}`)
	waitRows(t, ctx, time.Second, []int{6, 5, 4, 3, 2, 1})
}
