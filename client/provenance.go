package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/audit-stream/audit-stream/provenance"
)

// Provenance returns the provenance of event id: who appended it, when the
// server received it, whether its timestamp was the producer's (and
// skewed), and its producer signature. An event appended before the
// server recorded provenance, or imported, is an *Error with Status 404.
func (c *Client) Provenance(ctx context.Context, id int64) (provenance.Event, error) {
	var p provenance.Event
	data, err := c.get(ctx, "/events/"+strconv.FormatInt(id, 10)+"/provenance", nil, 64<<10)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, fmt.Errorf("client: provenance of event %d: %w", id, err)
	}
	return p, nil
}

// ProvenanceRecords streams the provenance records whose first event is in
// (after, until] (until 0: the head) as NDJSON, as GET /provenance serves
// them: what provenance.Check reads. The caller must close the reader;
// only ctx bounds it.
func (c *Client) ProvenanceRecords(ctx context.Context, after, until int64) (io.ReadCloser, error) {
	q := url.Values{}
	if after != 0 {
		q.Set("after", strconv.FormatInt(after, 10))
	}
	if until != 0 {
		q.Set("until", strconv.FormatInt(until, 10))
	}
	return c.openBody(ctx, "/provenance", q)
}

// ProvenanceSeal returns the signed provenance seal at a tree size (the
// size of a checkpoint the log signed), for provenance.OpenSeal.
func (c *Client) ProvenanceSeal(ctx context.Context, size int64) ([]byte, error) {
	return c.get(ctx, "/provenance/seal", url.Values{"size": {strconv.FormatInt(size, 10)}}, provenance.MaxSealSize)
}
