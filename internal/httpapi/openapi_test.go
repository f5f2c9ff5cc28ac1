package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/httpapi/apidoc"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

func init() {
	// Bodies the document describes only as strings.
	for _, ct := range []string{"text/css", "text/javascript", "application/x-ndjson", "text/html", "text/event-stream", "application/octet-stream"} {
		openapi3filter.RegisterBodyDecoder(ct, openapi3filter.FileBodyDecoder)
	}
}

func short(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if len(b) > 300 {
		return append(b[:300:300], "..."...)
	}
	return b
}

func loadDoc(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(apidoc.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json does not validate: %v", err)
	}
	doc.Servers = nil // match any host
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// Every route the server registers is in the document, with every query
// parameter it takes; every path in the document is a route.
func TestOpenAPICoversRouteTable(t *testing.T) {
	t.Parallel()
	doc, _ := loadDoc(t)
	env := apitest.Start(t, apitest.Options{})
	documented := map[string]bool{}
	for p, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+p] = true
		}
	}
	for _, rt := range env.API.Routes() {
		method, p := httpapi.OpenAPIPath(rt.Pattern)
		item := doc.Paths.Value(p)
		var op *openapi3.Operation
		if item != nil {
			op = item.GetOperation(method)
		}
		if op == nil {
			t.Errorf("route %q is not in openapi.json (want %s %s)", rt.Pattern, method, p)
			continue
		}
		delete(documented, method+" "+p)
		if op.Summary == "" {
			t.Errorf("%s %s has no summary (GET / shows it)", method, p)
		}
		var params []string
		for _, pr := range append(item.Parameters, op.Parameters...) {
			if pr.Value.In == "query" {
				params = append(params, pr.Value.Name)
			}
		}
		for _, q := range rt.Query {
			if !slices.Contains(params, q) {
				t.Errorf("%s %s: query parameter %q is not documented", method, p, q)
			}
		}
		for _, q := range params {
			if !slices.Contains(rt.Query, q) {
				t.Errorf("%s %s: documents query parameter %q, which the route refuses", method, p, q)
			}
		}
		if len(op.Responses.Map()) == 0 {
			t.Errorf("%s %s: no responses", method, p)
		}
	}
	for op := range documented {
		t.Errorf("openapi.json describes %s, which no route serves", op)
	}

	// GET / lists the same table.
	var idx struct{ Endpoints map[string]string }
	json.Unmarshal(call(t, "GET", env.URL+"/", "", "").body, &idx)
	for _, rt := range env.API.Routes() {
		if idx.Endpoints[rt.Pattern] == "" {
			t.Errorf("GET / does not list %q", rt.Pattern)
		}
	}
	if len(idx.Endpoints) != len(env.API.Routes()) {
		t.Errorf("GET / lists %d endpoints, the route table has %d", len(idx.Endpoints), len(env.API.Routes()))
	}
}

// Real answers, successes and problems alike, match the document.
func TestResponsesMatchOpenAPI(t *testing.T) {
	t.Parallel()
	_, router := loadDoc(t)
	// A kinds file with schemas: GET /kinds shows them, and schema
	// failures are 422s of the documented shape.
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{Kinds: testCatalog(t, testKinds)}})
	post := func(path, body string) {
		res, err := apitest.Client.Post(env.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	post("/events", `{"kind":"request_denied","source":"gw","payload":{"a":1,"rule":"no-pii-export"}}`)
	post("/events", `{"kind":"other","source":"gw"}`)
	env.Checkpoints.Wait(context.Background(), 2)

	cases := []struct {
		method, path, ctype, body string
		status                    int
		hdr                       []string
	}{
		{"GET", "/", "", "", 200, nil},
		{"GET", "/healthz", "", "", 200, nil},
		{"GET", "/readyz", "", "", 200, nil},
		{"GET", "/ui/", "", "", 200, nil},
		{"GET", "/kinds", "", "", 200, nil},
		{"GET", "/openapi.json", "", "", 200, nil},
		{"GET", "/docs", "", "", 200, nil},
		{"GET", "/docs/swagger-ui.css", "", "", 200, nil},
		{"GET", "/docs/explorer.js", "", "", 200, nil},
		{"GET", "/docs/nope.js", "", "", 404, nil},
		{"POST", "/events", "application/json", `{"kind":"other","source":"gw","payload":{"b":[1,2]}}`, 201, nil},
		{"POST", "/events", "application/json", `{"kind":"made_up","source":""}`, 422, nil},
		{"POST", "/events", "application/json", `{"kind":`, 422, nil},
		{"POST", "/events", "text/plain", `{"kind":"other","source":"gw"}`, 415, nil},
		{"POST", "/events", "application/json", `{"kind":"other","source":"gw"}`, 201, []string{"Idempotency-Key", "k1"}},
		{"POST", "/events", "application/json", `{"kind":"other","source":"gw"}`, 200, []string{"Idempotency-Key", "k1"}},
		{"POST", "/events/batch", "application/json", `[{"kind":"other","source":"gw"},{"kind":"other","source":"gw"}]`, 201, nil},
		{"POST", "/events/batch", "application/json", `[{"kind":"other"}]`, 422, nil},
		{"POST", "/events", "application/json", `{"kind":"payment_approved","source":"b","payload":{"amount":-1,"lines":[{}]}}`, 422, nil},
		{"POST", "/events", "application/json", `{"kind":"legacy_payment","source":"b"}`, 422, nil},
		{"POST", "/events/batch", "application/json", `[{"kind":"other","source":"gw"},{"kind":"payment_approved","source":"b","payload":{}}]`, 422, nil},
		{"GET", "/events?kind=request_denied&limit=10", "", "", 200, nil},
		{"GET", "/events?knd=x", "", "", 400, nil},
		{"GET", "/events?kind=made_up", "", "", 422, nil},
		{"GET", "/events/1", "", "", 200, nil},
		{"GET", "/events/999999", "", "", 404, nil},
		{"GET", "/events/1/proof", "", "", 200, nil},
		{"GET", "/events/1/receipt", "", "", 200, nil},
		{"GET", "/proof/consistency?from=1", "", "", 200, nil},
		{"GET", "/verify", "", "", 200, nil},
		{"GET", "/stats", "", "", 200, nil},
		{"GET", "/metrics", "", "", 200, nil},
		{"GET", "/checkpoint", "", "", 200, nil},
		{"GET", "/checkpoint/key", "", "", 200, nil},
		{"GET", "/export?after=0", "", "", 200, nil},
		{"GET", "/export?since=2026-01-01&until=2030-01-01T00:00:00Z", "", "", 200, nil},
		{"GET", "/export?after=0&until=2", "", "", 200, nil},
		{"GET", "/tile/entries/000.p/2", "", "", 200, nil},
		{"GET", "/admin/tokens", "", "", 0, nil}, // closed while the server runs open
		{"DELETE", "/admin/tokens/tok_nope", "", "", 0, nil},
	}
	for _, c := range cases {
		req, err := http.NewRequest(c.method, env.URL+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		for i := 0; i+1 < len(c.hdr); i += 2 {
			req.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		res, err := apitest.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		name := c.method + " " + c.path
		if c.status != 0 && res.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d: %s", name, res.StatusCode, c.status, short(body))
			continue
		}
		// The router matches the request as the server saw it.
		// A tile path has several segments, which OpenAPI cannot express:
		// the document has it as one parameter.
		target := c.path
		if rest, ok := strings.CutPrefix(target, "/tile/"); ok {
			target = "/tile/" + url.PathEscape(rest)
		}
		vreq := httptest.NewRequest(c.method, target, strings.NewReader(c.body))
		for k, v := range req.Header {
			vreq.Header[k] = v
		}
		route, params, err := router.FindRoute(vreq)
		if err != nil {
			t.Errorf("%s: not in the document: %v", name, err)
			continue
		}
		in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if res.StatusCode < 400 {
			if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
				t.Errorf("%s: the request does not match the document: %v", name, err)
			}
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: res.StatusCode, Header: res.Header,
			Options: &openapi3filter.Options{IncludeResponseStatus: true}}
		out.SetBodyBytes(body)
		if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
			t.Errorf("%s: %d answer does not match the document: %v\n%s", name, res.StatusCode, err, short(body))
		}
		if res.StatusCode >= 400 {
			checkProblem(t, name, res.Header, body)
		}
	}
}

// checkProblem holds an error answer to RFC 9457 and our rules: a detail
// always, and errors items of {loc, msg, type} when present.
func checkProblem(t *testing.T, name string, h http.Header, body []byte) {
	t.Helper()
	if ct := h.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
	var p struct {
		Type   *string
		Title  *string
		Status *int
		Detail *string
		Errors []map[string]json.RawMessage
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Type == nil || p.Title == nil || p.Status == nil || p.Detail == nil || *p.Detail == "" {
		t.Errorf("%s: not a problem with a detail: %s", name, body)
	}
	for _, e := range p.Errors {
		if len(e) != 3 || e["loc"] == nil || e["msg"] == nil || e["type"] == nil {
			t.Errorf("%s: errors item %v is not {loc, msg, type}", name, e)
		}
	}
}
