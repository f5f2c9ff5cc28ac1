package httpapi

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/audit-stream/audit-stream/internal/httpapi/apidoc"
)

// Route is one entry of the route table: a ServeMux pattern and the query
// parameters it takes.
type Route struct {
	Pattern string
	Query   []string
}

// Routes returns the route table, for GET / and for the test that holds the
// OpenAPI document to it.
func (s *Server) Routes() []Route { return append([]Route(nil), s.table...) }

// OpenAPIPath maps a route pattern to its OpenAPI path and method:
// "GET /tile/{path...}" is GET /tile/{path}, "GET /{$}" is GET /.
func OpenAPIPath(pattern string) (method, p string) {
	method, p, _ = strings.Cut(pattern, " ")
	p = strings.ReplaceAll(p, "{$}", "")
	p = strings.ReplaceAll(p, "...}", "}")
	if p == "" {
		p = "/"
	}
	return method, p
}

var apiDoc = sync.OnceValues(func() ([]byte, map[string]string) {
	var doc struct {
		Info  map[string]any                       `json:"info"`
		Paths map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(apidoc.OpenAPI, &doc); err != nil {
		panic("httpapi: embedded openapi.json: " + err.Error())
	}
	summaries := map[string]string{}
	for p, ops := range doc.Paths {
		for method, op := range ops {
			if sum, ok := op["summary"].(string); ok {
				summaries[strings.ToUpper(method)+" "+p] = sum
			}
		}
	}
	// Serve the document with this binary's version.
	var full map[string]any
	json.Unmarshal(apidoc.OpenAPI, &full)
	full["info"].(map[string]any)["version"] = Version
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	enc.Encode(full)
	return buf.Bytes(), summaries
})

// summary is the OpenAPI summary of a route pattern.
func summary(pattern string) string {
	_, sums := apiDoc()
	method, p := OpenAPIPath(pattern)
	return sums[method+" "+p]
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	doc, _ := apiDoc()
	w.Header().Set("Content-Type", "application/json")
	_, err := w.Write(doc)
	return err
}

// docs serves the API explorer: its start page at /docs, its assets at
// /docs/{file}, all from the binary.
func (s *Server) docs(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	if name == "" {
		name = "index.html"
	}
	b, err := fs.ReadFile(apidoc.Explorer, "explorer/"+path.Clean(name))
	if err != nil || strings.Contains(name, "/") {
		return problem(http.StatusNotFound, "no such file: "+r.URL.Path)
	}
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" || path.Ext(name) == "" || name == "LICENSE" || name == "NOTICE" {
		ctype = "text/plain; charset=utf-8"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, err = w.Write(b)
	return err
}
