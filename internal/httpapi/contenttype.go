package httpapi

import (
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// checkBodyType refuses an append whose Content-Type is not JSON (or, for
// batches, NDJSON). A web page can make a browser POST text/plain, a form
// or multipart to any address without asking first; refusing those types
// keeps a page the operator never saw from appending to a server that runs
// open. No Content-Type at all is accepted, for clients of the original
// service that never sent one.
func checkBodyType(r *http.Request, ndjson bool) *Problem {
	vals := r.Header.Values("Content-Type")
	if len(vals) == 0 {
		return nil
	}
	want := "application/json or application/*+json"
	if ndjson {
		want = "application/json, application/*+json or application/x-ndjson"
	}
	if len(vals) > 1 {
		return problem(http.StatusUnsupportedMediaType, "send one Content-Type header; want "+want)
	}
	mt, params, err := mime.ParseMediaType(vals[0])
	if err != nil {
		return problem(http.StatusUnsupportedMediaType, "Content-Type "+strconv.Quote(vals[0])+" does not parse; want "+want)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return problem(http.StatusUnsupportedMediaType, "charset "+strconv.Quote(cs)+": JSON is UTF-8")
	}
	switch {
	case mt == "application/json":
	case strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
	case ndjson && isNDJSON(mt):
	default:
		return problem(http.StatusUnsupportedMediaType, "Content-Type "+strconv.Quote(mt)+" is not accepted; want "+want+" (or no Content-Type)")
	}
	return nil
}

// crossSite reports a request a browser made on behalf of a page from
// another site (Fetch Metadata). No legitimate client of a write endpoint
// is one: the API sends no CORS headers, and a page cannot attach a token
// without a preflight that fails. Browsers that predate Fetch Metadata
// send no such header and are caught only by the Content-Type check.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}
