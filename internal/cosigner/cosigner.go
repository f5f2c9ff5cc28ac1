// Package cosigner gathers witness cosignatures for the log's checkpoints.
// Whenever the checkpointer signs a new checkpoint, the cosigner submits it
// to every configured witness (c2sp.org/tlog-witness add-checkpoint) with a
// consistency proof from the size that witness last cosigned, and once a
// quorum of them has cosigned it, serves it with their cosignature lines
// appended. A witness that is down or slow delays the cosigned checkpoint;
// it never touches appends, which do not wait for any of this.
package cosigner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoints is the log's own checkpointer (*checkpoint.Checkpointer).
type Checkpoints interface {
	Signed() (verify.Checkpoint, []byte)
	Wait(ctx context.Context, size int64) (verify.Checkpoint, []byte, error)
	VerifierKey() string
}

// Tree reads the stored Merkle tree, for consistency proofs.
type Tree interface {
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
}

// Meta keeps the latest cosigned checkpoint across restarts, so that a
// restart with its witnesses down still serves one.
type Meta interface {
	Meta(ctx context.Context, key string) ([]byte, error)
	SetMeta(ctx context.Context, key string, value []byte) error
}

// metaKey is the store meta key of the latest cosigned checkpoint.
const metaKey = "cosigned_checkpoint"

// Witness is one configured witness.
type Witness struct {
	// Name labels the witness in logs and metrics.
	Name   string
	Client *witness.Client
}

// Options configures a Cosigner.
type Options struct {
	Witnesses []Witness
	// Quorum is how many witnesses must cosign a checkpoint before it is
	// served; 1 ≤ Quorum ≤ len(Witnesses).
	Quorum int
	// Timeout bounds one submission to one witness; default 10 s.
	Timeout time.Duration
	// Retry is the wait before submitting again to witnesses that failed,
	// when no newer checkpoint came first; default 5 s.
	Retry  time.Duration
	Logger *slog.Logger
}

// Cosigner serves the latest checkpoint a quorum of witnesses cosigned. It
// has the read methods of the checkpointer, so that the HTTP layer serves
// one or the other.
type Cosigner struct {
	checkpointer Checkpoints
	tree         Tree
	meta         Meta
	opt          Options
	log          *slog.Logger
	ws           []*witnessState

	mu      sync.Mutex
	latest  verify.Checkpoint
	signed  []byte // the log's note with the cosignature lines
	cosigns int    // how many witnesses cosigned what is served
	changed chan struct{}
	quorate bool // whether what is served reached the quorum

	keepMu sync.Mutex
	kept   int64 // the size of the cosigned checkpoint in the store

	submissions *prometheus.CounterVec
}

type witnessState struct {
	Witness
	size     atomic.Int64 // the size it last cosigned, as far as we know
	busy     atomic.Bool  // a submission to it is under way
	cosigned atomic.Int64 // the size of the last checkpoint it cosigned for us
}

// New returns a cosigner over the checkpointer's checkpoints. It serves the
// cosigned checkpoint kept from an earlier run when it still verifies under
// the log's key, else the checkpointer's latest until the first quorum.
func New(ctx context.Context, checkpointer Checkpoints, tree Tree, meta Meta, opt Options) (*Cosigner, error) {
	if len(opt.Witnesses) == 0 {
		return nil, errors.New("cosigner: no witnesses")
	}
	if opt.Quorum < 1 || opt.Quorum > len(opt.Witnesses) {
		return nil, fmt.Errorf("cosigner: quorum %d with %d witnesses; want 1 to %d", opt.Quorum, len(opt.Witnesses), len(opt.Witnesses))
	}
	if opt.Timeout <= 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.Retry <= 0 {
		opt.Retry = 5 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cosigner{checkpointer: checkpointer, tree: tree, meta: meta, opt: opt, log: opt.Logger, changed: make(chan struct{})}
	for _, w := range opt.Witnesses {
		c.ws = append(c.ws, &witnessState{Witness: w})
	}
	c.submissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audit_stream_witness_submissions_total",
		Help: "Checkpoint submissions to witnesses, by witness and result (cosigned, conflict, refused, failed).",
	}, []string{"witness", "result"})
	c.latest, c.signed = checkpointer.Signed()
	if kept, err := meta.Meta(ctx, metaKey); err == nil {
		if cp, ok := c.keptVerifies(kept); ok && cp.Size <= c.latest.Size {
			c.latest, c.signed, c.quorate = cp, kept, true
			c.cosigns = c.countCosigns(kept)
		}
	}
	return c, nil
}

// keptVerifies checks a cosigned checkpoint from an earlier run: the log's
// current key signed it and a quorum of the witnesses cosigned it.
func (c *Cosigner) keptVerifies(kept []byte) (verify.Checkpoint, bool) {
	v, err := verify.ParseVerifierKey(c.checkpointer.VerifierKey())
	if err != nil {
		return verify.Checkpoint{}, false
	}
	cp, err := verify.OpenCheckpoint(kept, v, "")
	if err != nil {
		// The origin may differ from the key name: take the body's.
		latest, _ := c.checkpointer.Signed()
		if cp, err = verify.OpenCheckpoint(kept, v, latest.Origin); err != nil {
			return cp, false
		}
	}
	_, err = witness.CheckQuorum(kept, c.verifiers(), c.opt.Quorum)
	return cp, err == nil
}

func (c *Cosigner) verifiers() []note.Verifier {
	var vs []note.Verifier
	for _, w := range c.ws {
		vs = append(vs, w.Client.Verifier)
	}
	return vs
}

func (c *Cosigner) countCosigns(signed []byte) int {
	valid, _, _ := witness.Cosigners(signed, c.verifiers())
	return len(valid)
}

// Collectors are the cosigner's Prometheus series.
func (c *Cosigner) Collectors() []prometheus.Collector {
	out := []prometheus.Collector{
		c.submissions,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "audit_stream_checkpoint_cosigned_size",
			Help: "Tree size of the latest checkpoint a quorum of witnesses cosigned (0 before the first).",
		}, func() float64 {
			c.mu.Lock()
			defer c.mu.Unlock()
			if !c.quorate {
				return 0
			}
			return float64(c.latest.Size)
		}),
	}
	for _, w := range c.ws {
		out = append(out, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "audit_stream_witness_cosigned_size",
			Help:        "Tree size of the last checkpoint this witness cosigned for the log.",
			ConstLabels: prometheus.Labels{"witness": w.Name},
		}, func() float64 { return float64(w.cosigned.Load()) }))
	}
	return out
}

// Run submits every new checkpoint to the witnesses until ctx ends.
func (c *Cosigner) Run(ctx context.Context) {
	var last verify.Checkpoint // the checkpoint of the last round
	complete := false          // whether every witness cosigned it
	for ctx.Err() == nil {
		cp, signed := c.checkpointer.Signed()
		if cp.Size == last.Size && cp.Hash == last.Hash {
			c.waitNext(ctx, cp.Size, complete)
			if ctx.Err() != nil {
				return
			}
			cp, signed = c.checkpointer.Signed()
		}
		complete = c.round(ctx, cp, signed)
		last = cp
	}
}

// waitNext waits for a checkpoint beyond size, or, when some witness has not
// cosigned the current one, at most the retry delay.
func (c *Cosigner) waitNext(ctx context.Context, size int64, complete bool) {
	wait, cancel := context.WithCancel(ctx)
	defer cancel()
	if !complete {
		var stop context.CancelFunc
		wait, stop = context.WithTimeout(wait, c.opt.Retry)
		defer stop()
	}
	c.checkpointer.Wait(wait, size+1)
}

// round submits one checkpoint to every witness not still busy with an
// earlier one, and returns once all of them answered or a quorum cosigned
// it: a hung witness must not hold back the checkpoints the others cosign.
// It reports whether every witness cosigned it.
func (c *Cosigner) round(ctx context.Context, cp verify.Checkpoint, signed []byte) bool {
	r := &roundState{cp: cp, signed: signed, quorum: make(chan struct{})}
	done := make(chan bool, len(c.ws))
	launched := 0
	for _, w := range c.ws {
		if !w.busy.CompareAndSwap(false, true) {
			continue // its submission of an earlier checkpoint still runs
		}
		launched++
		go func() {
			defer w.busy.Store(false)
			lines, err := c.submit(ctx, w, cp, signed)
			if err != nil && ctx.Err() == nil {
				c.log.Warn("witness did not cosign", "witness", w.Name, "size", cp.Size, "err", err)
			}
			if lines != nil {
				c.collect(ctx, r, lines)
			}
			done <- lines != nil
		}()
	}
	cosigned := 0
	for i := 0; i < launched; i++ {
		select {
		case ok := <-done:
			if ok {
				cosigned++
			}
		case <-r.quorum:
			r.mu.Lock()
			n := r.n
			r.mu.Unlock()
			return n == len(c.ws)
		}
	}
	if cosigned < c.opt.Quorum && ctx.Err() == nil {
		c.log.Warn("checkpoint not cosigned by a quorum of witnesses yet; serving the last one that was", "size", cp.Size, "cosigned_by", cosigned, "quorum", c.opt.Quorum)
	}
	return cosigned == len(c.ws)
}

// roundState gathers the cosignatures of one checkpoint, also those that
// arrive after the round moved on.
type roundState struct {
	cp     verify.Checkpoint
	signed []byte
	mu     sync.Mutex
	lines  []byte
	n      int
	quorum chan struct{} // closed when n reaches the quorum
}

func (c *Cosigner) collect(ctx context.Context, r *roundState, lines []byte) {
	r.mu.Lock()
	r.lines = append(r.lines, lines...)
	r.n++
	n, all := r.n, witness.Append(r.signed, r.lines)
	if n == c.opt.Quorum {
		close(r.quorum)
	}
	r.mu.Unlock()
	if n >= c.opt.Quorum {
		c.publish(ctx, r.cp, all, n)
	}
}

// submit gets one witness's cosignature, following its 409s: the size it
// reports is the one to prove consistency from.
func (c *Cosigner) submit(ctx context.Context, w *witnessState, cp verify.Checkpoint, signed []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		old := w.size.Load()
		if old > cp.Size {
			// It cosigned a larger tree (another instance's newer
			// checkpoint): this one is behind, the next round catches up.
			c.submissions.WithLabelValues(w.Name, "conflict").Inc()
			return nil, fmt.Errorf("the witness already cosigned size %d, beyond %d", old, cp.Size)
		}
		req := &witness.AddCheckpoint{OldSize: old, Checkpoint: signed}
		if old > 0 && old < cp.Size {
			proof, err := tlog.ProveTree(cp.Size, old, hashReader{ctx, c.tree})
			if err != nil {
				c.submissions.WithLabelValues(w.Name, "failed").Inc()
				return nil, fmt.Errorf("consistency proof from %d to %d: %w", old, cp.Size, err)
			}
			req.Proof = proof
		}
		sctx, cancel := context.WithTimeout(ctx, c.opt.Timeout)
		lines, err := w.Client.AddCheckpoint(sctx, req)
		cancel()
		var conflict *witness.ConflictError
		var status *witness.StatusError
		switch {
		case err == nil:
			c.submissions.WithLabelValues(w.Name, "cosigned").Inc()
			w.size.Store(cp.Size)
			w.cosigned.Store(cp.Size)
			return lines, nil
		case errors.As(err, &conflict) && attempt < 2:
			c.submissions.WithLabelValues(w.Name, "conflict").Inc()
			w.size.Store(conflict.Size)
			continue
		case errors.As(err, &status):
			c.submissions.WithLabelValues(w.Name, "refused").Inc()
			if status.Status == 422 {
				// The witness holds a checkpoint our log does not
				// extend: either it was fed a fork, or we were.
				c.log.Error("ALERT: a witness refused the log's checkpoint as inconsistent with what it cosigned before", "witness", w.Name, "size", cp.Size, "err", err)
			}
			return nil, err
		default:
			c.submissions.WithLabelValues(w.Name, "failed").Inc()
			return nil, err
		}
	}
}

// publish serves cp with its cosignatures, unless a later checkpoint, or
// the same one with more cosignatures, is served already.
func (c *Cosigner) publish(ctx context.Context, cp verify.Checkpoint, cosigned []byte, n int) {
	c.mu.Lock()
	if c.quorate && (cp.Size < c.latest.Size || cp.Size == c.latest.Size && n <= c.cosigns) {
		c.mu.Unlock()
		return
	}
	c.latest, c.signed, c.cosigns, c.quorate = cp, cosigned, n, true
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	// Kept in order: a slower publish of an older one must not land last.
	c.keepMu.Lock()
	defer c.keepMu.Unlock()
	if cp.Size < c.kept {
		return
	}
	if err := c.meta.SetMeta(ctx, metaKey, cosigned); err != nil && ctx.Err() == nil {
		// Only what a restart serves before its first quorum depends on it.
		c.log.Warn("cosigned checkpoint not kept", "err", err)
		return
	}
	c.kept = cp.Size
	c.log.Debug("cosigned checkpoint", "size", cp.Size, "witnesses", n)
}

// Latest is the checkpoint served.
func (c *Cosigner) Latest() verify.Checkpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest
}

// Signed is the checkpoint served and its note with the cosignatures.
func (c *Cosigner) Signed() (verify.Checkpoint, []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.latest, c.signed
}

// Wait returns the first cosigned checkpoint that covers at least size
// events, waiting for it if needed.
func (c *Cosigner) Wait(ctx context.Context, size int64) (verify.Checkpoint, []byte, error) {
	for {
		c.mu.Lock()
		cp, signed, ch, ok := c.latest, c.signed, c.changed, c.quorate
		c.mu.Unlock()
		if ok && cp.Size >= size {
			return cp, signed, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return cp, signed, ctx.Err()
		}
	}
}

// VerifierKey is the log's verifier key.
func (c *Cosigner) VerifierKey() string { return c.checkpointer.VerifierKey() }

type hashReader struct {
	ctx context.Context
	t   Tree
}

func (r hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	return r.t.ReadHashes(r.ctx, indexes)
}
