package client

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an answer of the server other than success: its status and the
// problem document (RFC 9457) it carried. Detail says what was wrong, in the
// server's words, for example `kind: unknown kind "nope"`.
type Error struct {
	Status int
	Type   string
	Title  string
	Detail string
	// RetryAfter is the server's Retry-After, when it sent one (503 while
	// shutting down or at the stream limit).
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("audit-stream: ")
	b.WriteString(strconv.Itoa(e.Status))
	if t := e.Title; t != "" || http.StatusText(e.Status) != "" {
		if t == "" {
			t = http.StatusText(e.Status)
		}
		b.WriteString(" " + t)
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// Temporary reports whether the same request may succeed later: the server
// is restarting or overloaded (5xx, 429) or the request timed out (408).
// Anything else is a request the server will keep refusing.
func (e *Error) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout
}

// responseError turns a non-2xx answer into an *Error, keeping the problem
// document when there is one and the start of the body otherwise.
func responseError(resp *http.Response) *Error {
	e := &Error{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode)}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var p struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(body, &p) == nil && (p.Detail != "" || p.Title != "") {
		e.Type, e.Detail = p.Type, p.Detail
		if p.Title != "" {
			e.Title = p.Title
		}
		return e
	}
	// Not a problem document: a proxy's error page, say.
	text := strings.TrimSpace(string(bytes.ToValidUTF8(body, nil)))
	if len(text) > 512 {
		text = text[:512] + "…"
	}
	e.Detail = text
	return e
}

// protocolError is a stream this client cannot follow: what the server sent
// is not what the protocol promises. Reconnecting would not help.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "client: stream: " + e.msg }
