package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// The verifiable log: what a client needs to hold the server to what it
// signed rather than to what it says.

// Checkpoint returns the latest signed checkpoint as the server serves it:
// a C2SP signed note. It is not checked here: pass it to
// verify.OpenCheckpoint with the log's verifier key.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/checkpoint", nil, verify.MaxCheckpointSize)
}

// VerifierKey returns the key the server says its checkpoints are signed
// with (name+hash+base64). Trusting it is trust on first use: pin it, and
// compare it with one obtained out of band.
func (c *Client) VerifierKey(ctx context.Context) (string, error) {
	b, err := c.get(ctx, "/checkpoint/key", nil, 4<<10)
	if err != nil {
		return "", err
	}
	key := string(bytes.TrimSpace(b))
	if _, err := verify.ParseVerifierKey(key); err != nil {
		return "", fmt.Errorf("client: the server's verifier key: %w", err)
	}
	return key, nil
}

// InclusionProof is the answer of GET /events/{id}/proof: the path from
// the event's leaf to the root of the tree of TreeSize events.
type InclusionProof struct {
	EventID   int64
	LeafIndex int64
	TreeSize  int64
	RootHash  tlog.Hash
	Proof     []tlog.Hash
}

// InclusionProof returns the proof that event id is in the tree of
// treeSize events; 0 means the latest checkpoint's tree. Check it against a
// signed checkpoint with verify.CheckInclusion.
func (c *Client) InclusionProof(ctx context.Context, id, treeSize int64) (InclusionProof, error) {
	var q url.Values
	if treeSize != 0 {
		q = url.Values{"tree_size": {strconv.FormatInt(treeSize, 10)}}
	}
	var ans struct {
		EventID   int64        `json:"event_id"`
		LeafIndex int64        `json:"leaf_index"`
		TreeSize  int64        `json:"tree_size"`
		RootHash  event.Hash   `json:"root_hash"`
		Proof     []event.Hash `json:"proof"`
	}
	if err := c.getJSON(ctx, "/events/"+strconv.FormatInt(id, 10)+"/proof", q, &ans); err != nil {
		return InclusionProof{}, err
	}
	return InclusionProof{ans.EventID, ans.LeafIndex, ans.TreeSize, tlog.Hash(ans.RootHash), tlogHashes(ans.Proof)}, nil
}

// Consistency returns the proof that the tree of to events extends the
// tree of from events; to 0 means the latest checkpoint's tree. Check it
// with verify.CheckConsistency.
func (c *Client) Consistency(ctx context.Context, from, to int64) ([]tlog.Hash, error) {
	q := url.Values{"from": {strconv.FormatInt(from, 10)}}
	if to != 0 {
		q.Set("to", strconv.FormatInt(to, 10))
	}
	var ans struct {
		Proof []event.Hash `json:"proof"`
	}
	if err := c.getJSON(ctx, "/proof/consistency", q, &ans); err != nil {
		return nil, err
	}
	return tlogHashes(ans.Proof), nil
}

// Receipt returns the receipt of event id: offline evidence that the event
// is in the log (verify.Receipt; its Marshal gives the bytes to keep). An
// event not yet covered by a signed checkpoint is an *Error with Status 503
// and a RetryAfter.
func (c *Client) Receipt(ctx context.Context, id int64) (verify.Receipt, error) {
	b, err := c.get(ctx, "/events/"+strconv.FormatInt(id, 10)+"/receipt", nil, verify.MaxReceiptSize)
	if err != nil {
		return verify.Receipt{}, err
	}
	rc, err := verify.ParseReceipt(b)
	if err != nil {
		return verify.Receipt{}, fmt.Errorf("client: the server sent a receipt this client cannot parse: %w", err)
	}
	return *rc, nil
}

// ExportOptions selects the events of an export.
type ExportOptions struct {
	// After and Until bound the event ids: (After, Until]. Until 0 means
	// the head as the server answers.
	After, Until int64
	// Kinds and Sources filter the events, as in QueryOptions.
	Kinds   []string
	Sources []string
}

// Export streams events as NDJSON, one event a line in wire form, as GET
// /export serves them: what verify.ExportSource reads and audit-stream
// verify --file checks. The caller must close the reader. Only ctx bounds
// it, not WithTimeout: an export of a large log takes long.
func (c *Client) Export(ctx context.Context, opt ExportOptions) (io.ReadCloser, error) {
	q := filterQuery(opt.Kinds, opt.Sources)
	if opt.After != 0 {
		q.Set("after", strconv.FormatInt(opt.After, 10))
	}
	if opt.Until != 0 {
		q.Set("until", strconv.FormatInt(opt.Until, 10))
	}
	return c.openBody(ctx, "/export", q)
}

// Health returns the server's liveness status ("ok"): the process serves.
func (c *Client) Health(ctx context.Context) (string, error) {
	return c.status(ctx, "/healthz")
}

// Ready returns the server's readiness status ("ready"): its store answers
// and its data directory takes a write. A server that is not ready is an
// *Error with Status 503 and the reason in Detail.
func (c *Client) Ready(ctx context.Context) (string, error) {
	return c.status(ctx, "/readyz")
}

func (c *Client) status(ctx context.Context, path string) (string, error) {
	var ans struct {
		Status string `json:"status"`
	}
	if err := c.getJSON(ctx, path, nil, &ans); err != nil {
		return "", err
	}
	return ans.Status, nil
}

// getJSON GETs a small JSON answer into v.
func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	b, err := c.get(ctx, path, q, 1<<20)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("client: GET %s: %w", path, err)
	}
	return nil
}

func tlogHashes(hs []event.Hash) []tlog.Hash {
	out := make([]tlog.Hash, len(hs))
	for i, h := range hs {
		out[i] = tlog.Hash(h)
	}
	return out
}

// openBody GETs path and hands over the body of a 200 unread, for answers
// too large to read whole (an export, the provenance records).
func (c *Client) openBody(ctx context.Context, path string, q url.Values) (io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, q, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	return resp.Body, nil
}
