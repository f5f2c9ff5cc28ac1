// Package client is the Go client of the audit-stream HTTP API, and the
// one the audit-stream CLI uses: append events (one or a batch, with an
// idempotency key for safe retries), read them back, tail the log live
// without ever losing or repeating an event, and fetch what holds the
// server to what it signed (checkpoints, proofs, receipts, the export) for
// package verify to check.
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
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
)

// maxEventBytes bounds one event as served (a payload accepted within the
// server's body limit can grow when canonicalised, \u-escaping non-ASCII),
// and so the memory a response or SSE frame may take.
const maxEventBytes = 16 << 20

// Client talks to one audit-stream server. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client
	token   string
	tls     *tls.Config
	timeout time.Duration
	signer  *signer // sign.go; nil: appends are not signed
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the http.Client used for every request (default
// http.DefaultClient). Its Timeout, if any, also bounds each Tail and
// Export connection, so leave it 0 for a client that tails; WithTimeout
// bounds the other requests.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithToken sends "Authorization: Bearer <token>" with every request.
func WithToken(token string) Option { return func(c *Client) { c.token = token } }

// WithTLSConfig makes the client use cfg for HTTPS: a private CA to trust,
// a client certificate for a server that requires mTLS (see TLSConfig). It
// applies to the transport of the http.Client given by WithHTTPClient too,
// which must then be an *http.Transport or nil.
func WithTLSConfig(cfg *tls.Config) Option { return func(c *Client) { c.tls = cfg } }

// WithTimeout bounds each request whose answer has a bounded size (every
// call but Tail and Export, which run for as long as their context lives).
// 0, the default, leaves them to their context.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

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
	if c.tls != nil {
		hc := *c.hc
		var t *http.Transport
		switch rt := hc.Transport.(type) {
		case nil:
			t = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			t = rt.Clone()
		default:
			return nil, fmt.Errorf("client: WithTLSConfig needs an *http.Transport, the http.Client has a %T", rt)
		}
		t.TLSClientConfig = c.tls
		hc.Transport = t
		c.hc = &hc
	}
	return c, nil
}

// URL is the server's base URL, as given to New.
func (c *Client) URL() string { return c.base.String() }

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

// request is one call with a bounded answer.
type request struct {
	method, path string
	query        url.Values
	body         []byte
	header       http.Header
	// limit bounds the answer; 0 means maxAnswer.
	limit int64
}

// maxAnswer bounds an answer read whole: the largest is a query page of
// 100,000 events.
const maxAnswer = 1 << 30

// do sends r and returns the body of a 2xx answer and its header, or an
// *Error.
func (c *Client) do(ctx context.Context, r request) ([]byte, http.Header, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := c.newRequest(ctx, r.method, r.path, r.query, r.body)
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, nil, responseError(resp)
	}
	limit := r.limit
	if limit <= 0 {
		limit = maxAnswer
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("client: %s %s: reading the answer: %w", r.method, r.path, err)
	}
	if int64(len(data)) > limit {
		return nil, nil, fmt.Errorf("client: %s %s: the answer is larger than %d bytes", r.method, r.path, limit)
	}
	return data, resp.Header, nil
}

// get is do for a GET of path.
func (c *Client) get(ctx context.Context, path string, q url.Values, limit int64) ([]byte, error) {
	data, _, err := c.do(ctx, request{method: http.MethodGet, path: path, query: q, limit: limit})
	return data, err
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

// wire is the request as the API takes it.
func (r AppendRequest) wire() any {
	return struct {
		Kind      string          `json:"kind"`
		Source    string          `json:"source"`
		Payload   json.RawMessage `json:"payload,omitempty"`
		Timestamp string          `json:"timestamp,omitempty"`
	}{r.Kind, r.Source, r.Payload, r.Timestamp}
}

// AppendOptions are the optional parts of an append.
type AppendOptions struct {
	// IdempotencyKey makes retries safe: the server stores the events of
	// a key once, and answers a retry with the same key and the same
	// requests with those events again (Appended.Replayed); the same key
	// with other requests is a 422. Keys are scoped to the token (to the
	// source when the server runs without tokens) and kept for the
	// server's --idempotency-ttl (24 h by default).
	IdempotencyKey string
}

// Appended is the answer of an append: the events as stored, and whether
// they are a replay of an earlier request with the same IdempotencyKey.
type Appended struct {
	Events   []event.Event
	Replayed bool
}

// Append appends one event and returns it as stored: with its id, hash and
// prev_hash. It returns only once the server has made the event durable.
func (c *Client) Append(ctx context.Context, r AppendRequest) (event.Event, error) {
	a, err := c.AppendWith(ctx, r, AppendOptions{})
	if err != nil {
		return event.Event{}, err
	}
	return a.Events[0], nil
}

// AppendWith is Append with options: an idempotency key.
func (c *Client) AppendWith(ctx context.Context, r AppendRequest, opt AppendOptions) (Appended, error) {
	if c.signer != nil && opt.IdempotencyKey == "" {
		r.Timestamp = c.signer.stamp(r.Timestamp)
	}
	return c.post(ctx, "/events", r.wire(), opt, func(data []byte) ([]event.Event, error) {
		e, err := parseEvent(data)
		return []event.Event{e}, err
	})
}

// MaxBatch is the most events one AppendBatch may carry.
const MaxBatch = 10000

// AppendBatch appends rs atomically, in one transaction: every event with
// consecutive ids, or (any request invalid, a 422 naming its index)
// none. It returns the events as stored, in the order of rs.
func (c *Client) AppendBatch(ctx context.Context, rs []AppendRequest, opt AppendOptions) (Appended, error) {
	if len(rs) == 0 || len(rs) > MaxBatch {
		return Appended{}, fmt.Errorf("client: append batch: want 1 to %d events, got %d", MaxBatch, len(rs))
	}
	items := make([]any, len(rs))
	for i, r := range rs {
		if c.signer != nil && opt.IdempotencyKey == "" {
			r.Timestamp = c.signer.stamp(r.Timestamp)
		}
		items[i] = r.wire()
	}
	a, err := c.post(ctx, "/events/batch", items, opt, parseEvents)
	if err == nil && len(a.Events) != len(rs) {
		return Appended{}, fmt.Errorf("client: append batch: sent %d events, the server answered with %d", len(rs), len(a.Events))
	}
	return a, err
}

// post sends an append and parses the events it answers with.
func (c *Client) post(ctx context.Context, path string, body any, opt AppendOptions, parse func([]byte) ([]event.Event, error)) (Appended, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Appended{}, fmt.Errorf("client: POST %s: payload: %w", path, err)
	}
	header := opt.header()
	if c.signer != nil {
		if header, err = c.signer.sign(b, path == "/events/batch", header); err != nil {
			return Appended{}, fmt.Errorf("client: POST %s: sign: %w", path, err)
		}
	}
	data, h, err := c.do(ctx, request{method: http.MethodPost, path: path, body: b, header: header})
	if err != nil {
		return Appended{}, err
	}
	evs, err := parse(data)
	if err != nil {
		return Appended{}, err
	}
	return Appended{Events: evs, Replayed: h.Get("Idempotent-Replayed") == "true"}, nil
}

func (o AppendOptions) header() http.Header {
	if o.IdempotencyKey == "" {
		return nil
	}
	return http.Header{"Idempotency-Key": {o.IdempotencyKey}}
}

// Get returns the event with the given id. An id not in the log is an
// *Error with Status 404.
func (c *Client) Get(ctx context.Context, id int64) (event.Event, error) {
	data, err := c.get(ctx, "/events/"+strconv.FormatInt(id, 10), nil, maxEventBytes)
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
	data, err := c.get(ctx, "/events", q, 0)
	if err != nil {
		return nil, err
	}
	return parseEvents(data)
}

// parseEvents parses an answer that is a JSON array of events.
func parseEvents(data []byte) ([]event.Event, error) {
	var raws []json.RawMessage
	if err := json.Unmarshal(data, &raws); err != nil {
		return nil, fmt.Errorf("client: the answer is not a JSON array: %w", err)
	}
	out := make([]event.Event, len(raws))
	for i, raw := range raws {
		var err error
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
	data, err := c.get(ctx, "/stats", nil, 64<<10)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("client: stats: %w", err)
	}
	return s, nil
}

// Verify asks the server to re-walk and re-hash the whole chain and to
// rebuild the Merkle root, comparing it with the tree it serves proofs
// from. A broken log is not an error: it is a report with Valid false.
// The server vouches for itself here: to hold the events to a checkpoint
// the log signed instead, walk Export through verify.CheckTreeRaw, as
// audit-stream verify --url does.
func (c *Client) Verify(ctx context.Context) (verify.TreeReport, error) {
	var r verify.TreeReport
	data, err := c.get(ctx, "/verify", nil, 64<<10)
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
