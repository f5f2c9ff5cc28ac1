// Package client is the Go client of the audit-stream HTTP API: append
// events, read them back, verify the chain, and tail the log live without
// ever losing or repeating an event.
//
// Every event it returns was decoded with event.ParseStored from the bytes
// the server sent, so a caller can re-hash it (event.Event.ComputeHash) or
// walk a chain of them with package verify.
//
// Errors from the server are *Error values that keep the problem+json
// document (RFC 9457) the server answered with.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
)

// maxEventBytes bounds one event as served (a payload accepted within the
// server's body limit can grow when canonicalised, \u-escaping non-ASCII),
// and so the memory a response or SSE frame may take.
const maxEventBytes = 16 << 20

// Client talks to one audit-stream server. It is safe for concurrent use.
type Client struct {
	base  *url.URL
	hc    *http.Client
	token string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the http.Client used for every request (default
// http.DefaultClient). Its Timeout, if any, also bounds each Tail
// connection, so leave it 0 for a client that tails.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithToken sends "Authorization: Bearer <token>" with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// New returns a client for the server at baseURL, such as
// "http://localhost:8093". A path in baseURL is kept as a prefix, for a
// server behind a reverse proxy.
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: bad base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("client: bad base URL %q: want http(s)://host[:port][/prefix]", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, hc: http.DefaultClient}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// endpoint returns the URL of path (which starts with "/") with query q.
func (c *Client) endpoint(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(path, q), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// do sends a request and returns the body of a 2xx answer, or an *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, error) {
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, responseError(resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("client: %s %s: reading the answer: %w", method, path, err)
	}
	return data, nil
}

// AppendRequest is one event to append.
type AppendRequest struct {
	Kind   string
	Source string
	// Payload is a JSON object; nil sends none (the server stores {}).
	Payload json.RawMessage
	// Timestamp is an RFC 3339 date-time kept as sent; "" lets the server
	// assign one.
	Timestamp string
}

// Append appends one event and returns it as stored: with its id, hash and
// prev_hash. It returns only once the server has made the event durable.
func (c *Client) Append(ctx context.Context, r AppendRequest) (event.Event, error) {
	body := struct {
		Kind      string          `json:"kind"`
		Source    string          `json:"source"`
		Payload   json.RawMessage `json:"payload,omitempty"`
		Timestamp string          `json:"timestamp,omitempty"`
	}{r.Kind, r.Source, r.Payload, r.Timestamp}
	b, err := json.Marshal(body)
	if err != nil {
		return event.Event{}, fmt.Errorf("client: append: payload: %w", err)
	}
	data, err := c.do(ctx, http.MethodPost, "/events", nil, b)
	if err != nil {
		return event.Event{}, err
	}
	return parseEvent(data)
}

// Get returns the event with the given id. An id not in the log is an
// *Error with Status 404.
func (c *Client) Get(ctx context.Context, id int64) (event.Event, error) {
	data, err := c.do(ctx, http.MethodGet, "/events/"+strconv.FormatInt(id, 10), nil, nil)
	if err != nil {
		return event.Event{}, err
	}
	return parseEvent(data)
}

// QueryOptions selects events. Several kinds (or sources) are alternatives;
// kinds and sources combine with AND.
type QueryOptions struct {
	Kinds   []string
	Sources []string
	// Limit is how many of the latest matching events to return; 0 means
	// the server's default (1000).
	Limit int
}

// Query returns the latest events matching opt, oldest first.
func (c *Client) Query(ctx context.Context, opt QueryOptions) ([]event.Event, error) {
	q := filterQuery(opt.Kinds, opt.Sources)
	if opt.Limit != 0 {
		q.Set("limit", strconv.Itoa(opt.Limit))
	}
	data, err := c.do(ctx, http.MethodGet, "/events", q, nil)
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("client: query: the answer is not a JSON array: %w", err)
	}
	out := make([]event.Event, len(raws))
	for i, raw := range raws {
		if out[i], err = parseEvent(raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func filterQuery(kinds, sources []string) url.Values {
	q := url.Values{}
	for _, k := range kinds {
		q.Add("kind", k)
	}
	for _, s := range sources {
		q.Add("source", s)
	}
	return q
}

// Stats is the answer of GET /stats.
type Stats struct {
	Count       int64 `json:"count"`
	LastEventID int64 `json:"last_event_id"`
	// LatestHash is the hash of the last event; the zero hash when the log
	// is empty.
	LatestHash event.Hash `json:"latest_hash"`
}

// Stats returns the size and head of the log.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	data, err := c.do(ctx, http.MethodGet, "/stats", nil, nil)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("client: stats: %w", err)
	}
	return s, nil
}

// Verify asks the server to re-walk and re-hash the whole chain. A broken
// chain is not an error: it is a Report with Valid false.
func (c *Client) Verify(ctx context.Context) (verify.Report, error) {
	var r verify.Report
	data, err := c.do(ctx, http.MethodGet, "/verify", nil, nil)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("client: verify: %w", err)
	}
	return r, nil
}

func parseEvent(data []byte) (event.Event, error) {
	e, err := event.ParseStored(bytes.TrimSpace(data))
	if err != nil {
		return event.Event{}, fmt.Errorf("client: the server sent an event this client cannot parse: %w", err)
	}
	return e, nil
}

// isTemporary reports whether err is worth retrying: the network, or a
// server that is restarting, overloaded or behind a failing proxy.
func isTemporary(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.Temporary()
	}
	var pe *protocolError
	return !errors.As(err, &pe)
}
