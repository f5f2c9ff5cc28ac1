// Package web serves the dashboard at /ui/: static HTML, CSS and JavaScript
// modules embedded in the binary, so it works with no internet access. The
// page reads the log through the public API and checks events itself (hash,
// chain link, inclusion proof, checkpoint signature) with WebCrypto.
package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Prefix is where the dashboard lives.
const Prefix = "/ui/"

// csp keeps the page to its own origin: no inline script, no third-party
// code, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the dashboard under Prefix. kinds are the event kinds the
// server accepts: the page subscribes to each by name (SSE dispatches
// named events only to their own listeners) and offers them in the filter.
func Handler(kinds []string) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	kindsJSON, _ := json.Marshal(kinds)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The files change only with the binary; revalidating is cheap.
		h.Set("Cache-Control", "no-cache")
		if r.URL.Path == Prefix+"kinds.json" {
			h.Set("Content-Type", "application/json")
			w.Write(kindsJSON)
			return
		}
		if strings.HasSuffix(r.URL.Path, ".js") {
			h.Set("Content-Type", "text/javascript; charset=utf-8")
		}
		files.ServeHTTP(w, r)
	})
}
