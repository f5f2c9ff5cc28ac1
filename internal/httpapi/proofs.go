package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// errNoCheckpoints answers the verifiable-log routes of a server started
// without a checkpointer.
var errNoCheckpoints = problem(http.StatusServiceUnavailable, "this server does not sign checkpoints")

// Checkpoints is what the verifiable-log routes read: the latest
// checkpoint, its signed note, and a wait for one that covers an event.
// *checkpoint.Checkpointer and *cosigner.Cosigner are both.
type Checkpoints interface {
	Latest() verify.Checkpoint
	Signed() (verify.Checkpoint, []byte)
	Wait(ctx context.Context, size int64) (verify.Checkpoint, []byte, error)
	VerifierKey() string
}

func (s *Server) checkpoints() (Checkpoints, error) {
	if s.opt.Checkpoints == nil {
		return nil, errNoCheckpoints
	}
	return s.opt.Checkpoints, nil
}

// hashReader reads the stored Merkle tree for the tlog proof functions.
type hashReader struct {
	ctx context.Context
	st  Store
}

func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return r.st.ReadHashes(r.ctx, indexes)
}

// hexHashes is a proof as the JSON API spells hashes: lowercase hex.
func hexHashes(hs []tlog.Hash) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = event.Hash(h).String()
	}
	return out
}

func (s *Server) getCheckpoint(w http.ResponseWriter, r *http.Request) error {
	checkpoints, err := s.checkpoints()
	if err != nil {
		return err
	}
	_, signed := checkpoints.Signed()
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	// Mutable: tlog-tiles asks that it not be cached beyond a few seconds.
	h.Set("Cache-Control", "no-cache")
	_, err = w.Write(signed)
	return err
}

func (s *Server) getCheckpointKey(w http.ResponseWriter, r *http.Request) error {
	checkpoints, err := s.checkpoints()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = w.Write([]byte(checkpoints.VerifierKey() + "\n"))
	return err
}

// treeSize reads an optional tree size parameter, defaulting to the latest
// checkpoint's. A size beyond the stored tree is a 400.
func (s *Server) treeSize(r *http.Request, name string, cp verify.Checkpoint) (int64, error) {
	q := r.URL.Query()
	if !q.Has(name) {
		return cp.Size, nil
	}
	v := q.Get(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, problem(http.StatusBadRequest, name+" must be a positive integer, got "+strconv.Quote(v))
	}
	head, err := s.st.Head(r.Context())
	if err != nil {
		return 0, err
	}
	if n > head.ID {
		return 0, problem(http.StatusBadRequest, name+" "+v+" is beyond the tree, which has "+strconv.FormatInt(head.ID, 10)+" events")
	}
	return n, nil
}

// rootAt is the root of the tree of size n, from the checkpoint when it
// covers exactly n.
func (s *Server) rootAt(ctx context.Context, n int64, cp verify.Checkpoint) (tlog.Hash, error) {
	if n == cp.Size {
		return cp.Hash, nil
	}
	return tlog.TreeHash(n, hashReader{ctx, s.st})
}

func (s *Server) inclusionProof(w http.ResponseWriter, r *http.Request) error {
	checkpoints, err := s.checkpoints()
	if err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	cp := checkpoints.Latest()
	n, err := s.treeSize(r, "tree_size", cp)
	if err != nil {
		return err
	}
	if id > n {
		return problem(http.StatusNotFound, "event "+strconv.FormatInt(id, 10)+" is not in the tree of size "+strconv.FormatInt(n, 10)+"; pass a larger tree_size or wait for the next checkpoint")
	}
	proof, err := tlog.ProveRecord(n, id-1, hashReader{r.Context(), s.st})
	if err != nil {
		return err
	}
	root, err := s.rootAt(r.Context(), n, cp)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, InclusionProof{
		EventID: id, LeafIndex: id - 1, TreeSize: n,
		RootHash: event.Hash(root).String(), Proof: hexHashes(proof),
	})
}

func (s *Server) consistencyProof(w http.ResponseWriter, r *http.Request) error {
	checkpoints, err := s.checkpoints()
	if err != nil {
		return err
	}
	cp := checkpoints.Latest()
	q := r.URL.Query()
	if !q.Has("from") {
		return problem(http.StatusBadRequest, "from is required: the size of the older tree")
	}
	from, err := s.treeSize(r, "from", cp)
	if err != nil {
		return err
	}
	to, err := s.treeSize(r, "to", cp)
	if err != nil {
		return err
	}
	if from > to {
		return problem(http.StatusBadRequest, "from "+strconv.FormatInt(from, 10)+" is larger than to "+strconv.FormatInt(to, 10))
	}
	var proof tlog.TreeProof
	if from < to {
		if proof, err = tlog.ProveTree(to, from, hashReader{r.Context(), s.st}); err != nil {
			return err
		}
	}
	return writeJSON(w, http.StatusOK, ConsistencyProof{From: from, To: to, Proof: hexHashes(proof)})
}

// InclusionProof is the answer of GET /events/{id}/proof.
type InclusionProof struct {
	EventID   int64    `json:"event_id"`
	LeafIndex int64    `json:"leaf_index"`
	TreeSize  int64    `json:"tree_size"`
	RootHash  string   `json:"root_hash"`
	Proof     []string `json:"proof"`
}

// ConsistencyProof is the answer of GET /proof/consistency.
type ConsistencyProof struct {
	From  int64    `json:"from"`
	To    int64    `json:"to"`
	Proof []string `json:"proof"`
}

// pathID reads the {id} path value, as GET /events/{id} does.
func pathID(r *http.Request) (int64, error) {
	v := r.PathValue("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err == nil && id >= 1 {
		return id, nil
	}
	// An integer the log cannot hold (0, negative, beyond int64) names no
	// event: 404, as the original answered. Only a non-integer is a 422.
	integer := isInteger(v)
	if len(v) > 64 {
		v = v[:64] + "..."
	}
	if integer {
		return 0, problem(http.StatusNotFound, "no event with id "+v)
	}
	return 0, invalidParam(http.StatusUnprocessableEntity, "path", "event_id", "int_parsing",
		"event id must be an integer, got "+strconv.Quote(v))
}

// isInteger reports whether v is an optionally signed decimal integer.
func isInteger(v string) bool {
	if v != "" && (v[0] == '-' || v[0] == '+') {
		v = v[1:]
	}
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// receiptWait bounds how long a receipt request waits for the checkpoint
// that covers a just-appended event.
const receiptWait = 5 * time.Second

// receipt serves the event with its inclusion proof in the latest
// checkpoint, as a C2SP tlog-proof. An event newer than the latest
// checkpoint waits for the next one (at most one checkpoint interval).
func (s *Server) receipt(w http.ResponseWriter, r *http.Request) error {
	checkpoints, err := s.checkpoints()
	if err != nil {
		return err
	}
	id, err := pathID(r)
	if err != nil {
		return err
	}
	e, err := s.st.Get(r.Context(), id)
	if err != nil {
		return missing(err, "no event with id "+strconv.FormatInt(id, 10))
	}
	ctx, cancel := context.WithTimeout(r.Context(), receiptWait)
	defer cancel()
	cp, signed, err := checkpoints.Wait(ctx, id)
	if err != nil {
		p := problem(http.StatusServiceUnavailable, "event "+strconv.FormatInt(id, 10)+" is not covered by a signed checkpoint yet; retry shortly")
		p.retryAfter = 1
		return p
	}
	proof, err := tlog.ProveRecord(cp.Size, id-1, hashReader{r.Context(), s.st})
	if err != nil {
		return err
	}
	rc := verify.Receipt{Event: e, Index: id - 1, Proof: proof, Checkpoint: signed}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="event-`+strconv.FormatInt(id, 10)+`.tlog-proof"`)
	_, err = w.Write(rc.Marshal())
	return err
}
