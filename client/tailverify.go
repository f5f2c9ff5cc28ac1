package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
	"github.com/audit-stream/audit-stream/witness"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TailVerify makes Tail verify everything it reads against the log's signed
// checkpoints, which the server interleaves with the events
// (/stream?checkpoints=true): every event's hash and its link to the one
// before, every checkpoint's signature (and cosignatures) and its
// consistency with what was verified before, and that every event is a leaf
// of the next checkpoint's tree, at its place. A server that shows this
// reader a different history than the one it signed for everyone — and
// that witnesses cosigned — is caught as it happens, with a *VerifyError.
//
// Tail yields an event only once a checkpoint has covered it: never an
// event that is not yet checked against the tree. Until then the event is
// held (OnUnverified sees it at once, for display). Events go out at the
// pace of checkpoints: one interval of the server's (--checkpoint-interval,
// 1 s), plus the witnesses' round trip when they cosign.
type TailVerify struct {
	// LogKeys are the log's note verifier keys (name+hash+base64, as GET
	// /checkpoint/key serves them, obtained out of band): every checkpoint
	// must be signed by one of them. Give the old and the new key across
	// a key rotation. Required.
	LogKeys []string
	// Origin is the checkpoints' origin line; default the first key's
	// name, the tlog convention.
	Origin string
	// WitnessKeys are cosignature/v1 verifier keys of witnesses this
	// reader trusts; Quorum of them (default: all) must have cosigned
	// every checkpoint. None: the log's signature alone.
	WitnessKeys []string
	Quorum      int
	// MaxHeldBytes bounds the events held while no checkpoint covers them
	// (each counted as its payload and fields plus 256 bytes); default 64
	// MiB, and never fewer than 4,608 events (a replay is vouched for
	// every 4,096). When the log's checkpoints stall — its witnesses are
	// down, say — beyond that, the held events are dropped and the tail
	// reconnects after its backoff from the last event it verified, to
	// read them again: memory stays bounded, nothing unverified is
	// yielded, and OnRetry is told why.
	MaxHeldBytes int64
	// OnUnverified, if set, is called with each event as soon as its hash
	// and chain link check out, before any checkpoint covers it: to show
	// events early, never to act on them as verified. Events dropped by a
	// reconnect are passed again when they are read again.
	OnUnverified func(event.Event)
	// OnCheckpoint, if set, is called with each checkpoint once it and the
	// events it covers verified, before those events are yielded; note is
	// the signed note as served, cosignatures included.
	OnCheckpoint func(cp verify.Checkpoint, note []byte)
}

// Check names what a *VerifyError found wrong.
type Check string

const (
	// CheckSequence: an event is missing, repeated or out of order
	// (EventID is the id that was due), or the server vouched for
	// events it never sent (a checkpoint beyond them).
	CheckSequence Check = "sequence"
	// CheckHash: an event's hash is not the hash of its content.
	CheckHash Check = "hash"
	// CheckChain: an event's prev_hash is not the previous event's hash.
	CheckChain Check = "chain"
	// CheckSignature: a checkpoint is not signed by a log key, or is not
	// a checkpoint of this log.
	CheckSignature Check = "signature"
	// CheckQuorum: a checkpoint lacks the witness cosignatures required.
	CheckQuorum Check = "quorum"
	// CheckConsistency: a signed checkpoint that the history verified so
	// far cannot be a prefix of: a fork, or a log that went back.
	CheckConsistency Check = "consistency"
	// CheckTree: events received are not the leaves of a signed tree
	// (EventID names the first one found not in it, when the server's
	// proofs could locate it).
	CheckTree Check = "tree"
	// CheckFrame: a checkpoint frame the protocol does not allow.
	CheckFrame Check = "frame"
)

// VerifyError is a verifying Tail's finding: the server, or something
// between it and this reader, served a history that is not the one the log
// signed. It ends the tail; retrying would not make it go away.
type VerifyError struct {
	Check Check
	// EventID is the event concerned, 0 when the finding is about a
	// checkpoint alone.
	EventID int64
	// TreeSize is the size of the checkpoint concerned, 0 when the
	// finding is about an event alone.
	TreeSize int64
	Reason   string
	// Checkpoint and Previous are the signed notes concerned, verbatim,
	// for evidence: the checkpoint that failed, and the last one that
	// verified before it.
	Checkpoint, Previous []byte
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "client: tail: verification failed (%s)", e.Check)
	if e.EventID != 0 {
		fmt.Fprintf(&b, " at event %d", e.EventID)
	}
	if e.TreeSize != 0 {
		fmt.Fprintf(&b, ", checkpoint of tree size %d", e.TreeSize)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// catchUpEvents is the server's stride between two frames of a checkpoint
// while a subscriber is behind it (internal/httpapi): a frame beyond the
// events received comes only first on a connection or after that many.
const catchUpEvents = 4096

// streamChunk is the most events the server sends between two looks at
// its checkpoints.
const streamChunk = 512

// errHeldTooMuch ends a connection whose held events outgrew MaxHeldBytes.
var errHeldTooMuch = errors.New("client: tail: no checkpoint covered the events held within MaxHeldBytes (are the log's checkpoints or witnesses stalled?); reconnecting from the last verified event")

// verifier is the state of a verifying tail.
type verifier struct {
	c        *Client
	opt      TailVerify
	logKeys  []note.Verifier
	wits     []note.Verifier
	quorum   int
	maxHeld  int64
	keepKind func(*event.Event) bool

	started bool  // the start position is known
	start   int64 // the event the tail started after
	// Verified: the tree of the first v events (valid once anchored),
	// the hash of event v, and the last checkpoint that verified.
	v        int64
	anchored bool
	tree     verify.Tree
	vprev    event.Hash
	last     *verify.Checkpoint
	lastNote []byte
	// Checkpoints accepted while behind them, smallest first: the tree
	// the events form at their size must be theirs.
	owed []owedCheckpoint

	// Received after v, chain-checked, waiting for a checkpoint.
	held      []event.Event
	heldBytes int64
	prev      event.Hash
	drop      bool // the held events outgrew their bound: read them again
	// Frames on the current connection.
	frames int
	buf    []byte // for hashing
}

func newVerifier(c *Client, opt TailVerify, keep func(*event.Event) bool) (*verifier, error) {
	vf := &verifier{c: c, opt: opt, keepKind: keep, maxHeld: opt.MaxHeldBytes}
	if vf.maxHeld <= 0 {
		vf.maxHeld = 64 << 20
	}
	if len(opt.LogKeys) == 0 {
		return nil, errors.New("client: tail: TailVerify needs the log's verifier key (LogKeys)")
	}
	for _, k := range opt.LogKeys {
		v, err := verify.ParseVerifierKey(k)
		if err != nil {
			return nil, fmt.Errorf("client: tail: %w", err)
		}
		vf.logKeys = append(vf.logKeys, v)
	}
	if vf.opt.Origin == "" {
		vf.opt.Origin = vf.logKeys[0].Name()
	}
	if len(opt.WitnessKeys) > 0 {
		ws, err := witness.ParseVerifiers(opt.WitnessKeys)
		if err != nil {
			return nil, fmt.Errorf("client: tail: witness keys: %w", err)
		}
		vf.wits, vf.quorum = ws, opt.Quorum
		if vf.quorum == 0 {
			vf.quorum = len(ws)
		}
	}
	if vf.quorum < 0 || vf.quorum > len(vf.wits) || (opt.Quorum != 0 && len(vf.wits) == 0) {
		return nil, fmt.Errorf("client: tail: quorum %d with %d witness keys", opt.Quorum, len(vf.wits))
	}
	return vf, nil
}

// resume is where the next connection resumes: after the last event
// received (held events stay held: the server's first frame on the new
// connection vouches for them), or, after the held events outgrew their
// bound, after the last event verified (the held ones are dropped, to be
// read again). Until the first connection told the start: after (-1:
// the head).
func (vf *verifier) resume(after int64) int64 {
	vf.frames = 0
	if !vf.started {
		return after
	}
	if vf.drop {
		vf.held, vf.heldBytes, vf.prev, vf.drop = nil, 0, vf.vprev, false
	}
	return vf.cursor()
}

// position takes the position a connection starts from (its preamble).
// The first one is the start: event start is read, checked and chained
// to; the tree before it is learned from the first checkpoint.
func (vf *verifier) position(ctx context.Context, pos int64) error {
	if vf.started {
		if pos != vf.cursor() {
			return &protocolError{fmt.Sprintf("asked to resume after event %d, the stream starts after %d", vf.cursor(), pos)}
		}
		return nil
	}
	if pos > 0 {
		e, err := vf.c.Get(ctx, pos)
		if err != nil {
			return fmt.Errorf("client: tail: reading event %d to resume from: %w", pos, err)
		}
		if h, _ := e.ComputeHash(nil); e.ID != pos || h != e.Hash {
			return &VerifyError{Check: CheckHash, EventID: pos, Reason: "the event the tail starts after, as GET /events serves it, does not hash to its hash (or is another event)"}
		}
		vf.vprev = e.Hash
	} else {
		vf.anchored = true // the empty tree
	}
	vf.started, vf.start, vf.v, vf.prev = true, pos, pos, vf.vprev
	return nil
}

func (vf *verifier) cursor() int64 { return vf.v + int64(len(vf.held)) }

// event checks the next event and holds it.
func (vf *verifier) event(e event.Event) error {
	want := vf.cursor() + 1
	if e.ID != want {
		return &VerifyError{Check: CheckSequence, EventID: want, Reason: fmt.Sprintf("event %d was due, the stream sent event %d", want, e.ID)}
	}
	var h event.Hash
	h, vf.buf = e.ComputeHash(vf.buf)
	if h != e.Hash {
		return &VerifyError{Check: CheckHash, EventID: e.ID, Reason: "the event's content does not hash to its hash: it was altered"}
	}
	if e.PrevHash != vf.prev {
		return &VerifyError{Check: CheckChain, EventID: e.ID, Reason: fmt.Sprintf("prev_hash is not the hash of event %d", e.ID-1)}
	}
	vf.prev = e.Hash
	vf.held = append(vf.held, e)
	vf.heldBytes += 256 + int64(len(e.Kind)+len(e.Source)+len(e.Timestamp)+len(e.Payload))
	if vf.opt.OnUnverified != nil {
		vf.opt.OnUnverified(e)
	}
	// Never below a catch-up stride: while replaying, the server vouches
	// for the events every catchUpEvents, and a bound below that would
	// make the replay start over forever.
	if vf.heldBytes > vf.maxHeld && len(vf.held) > catchUpEvents+streamChunk {
		vf.drop = true
		return errHeldTooMuch
	}
	return nil
}

type owedCheckpoint struct {
	cp   verify.Checkpoint
	note []byte
}

// cpFrame is the data of a checkpoint frame (internal/sse.Checkpoint).
type cpFrame struct {
	TreeSize *int64       `json:"tree_size"`
	From     *int64       `json:"from"`
	Proof    []event.Hash `json:"proof"`
	Note     *string      `json:"checkpoint"`
}

// checkpoint checks a checkpoint frame and returns the held events it
// verified, in order.
func (vf *verifier) checkpoint(ctx context.Context, data []byte) ([]event.Event, error) {
	vf.frames++
	var f cpFrame
	if err := json.Unmarshal(data, &f); err != nil || f.TreeSize == nil || f.From == nil || f.Note == nil {
		reason := "the frame is not {tree_size, from, proof, checkpoint}"
		if err != nil {
			reason += ": " + err.Error()
		}
		return nil, &VerifyError{Check: CheckFrame, Reason: reason}
	}
	signed := []byte(*f.Note)
	fail := func(check Check, id int64, format string, args ...any) error {
		return &VerifyError{Check: check, EventID: id, TreeSize: *f.TreeSize, Reason: fmt.Sprintf(format, args...), Checkpoint: signed, Previous: vf.lastNote}
	}
	cp, err := vf.open(signed)
	if err != nil {
		return nil, fail(CheckSignature, 0, "%v", err)
	}
	if cp.Size != *f.TreeSize {
		return nil, fail(CheckFrame, 0, "the frame says tree size %d, its signed note %d", *f.TreeSize, cp.Size)
	}
	if len(vf.wits) > 0 {
		if _, err := witness.CheckQuorum(signed, vf.wits, vf.quorum); err != nil {
			return nil, fail(CheckQuorum, 0, "%v", err)
		}
	}
	if vf.last != nil {
		switch {
		case cp.Size < vf.last.Size:
			return nil, fail(CheckConsistency, 0, "the log went back: tree size %d after a checkpoint of %d", cp.Size, vf.last.Size)
		case cp.Size == vf.last.Size && cp.Hash != vf.last.Hash:
			return nil, fail(CheckConsistency, 0, "two different roots signed for tree size %d: a fork", cp.Size)
		}
	}
	n, from, cur := cp.Size, *f.From, vf.cursor()
	switch {
	case n < vf.start:
		return nil, fail(CheckFrame, 0, "a checkpoint older than the position %d the tail started from", vf.start)
	case from > cur:
		return nil, fail(CheckSequence, cur+1, "the server proves from tree size %d, but the stream sent events only up to %d: events were withheld", from, cur)
	case from < vf.v:
		return nil, fail(CheckFrame, 0, "a proof from tree size %d, before the %d events already verified", from, vf.v)
	case n > cur && vf.frames > 1 && (from != cur || cur-vf.v < catchUpEvents):
		// The server sends a checkpoint beyond what it sent only first on
		// a connection or every catchUpEvents events, from where the
		// stream is: otherwise it had sent events this reader never got.
		return nil, fail(CheckSequence, cur+1, "a checkpoint of %d events after only %d: events %d-%d were withheld", n, cur, cur+1, n)
	}
	if !vf.anchored {
		if err := vf.anchor(ctx, cp); err != nil {
			return nil, err
		}
	}
	// The root of the first `from` events: the verified tree, and the
	// held events up to from. Folding past the size of a checkpoint
	// accepted while this reader was behind it settles that one too.
	t := vf.tree
	owed := vf.owed
	var owedRoots []tlog.Hash // the tree's roots at the sizes of owed, as folded
	fold := func(evs []event.Event) {
		for _, e := range evs {
			t.Add(e.Hash)
			if len(owedRoots) < len(owed) && owed[len(owedRoots)].cp.Size == t.Size() {
				owedRoots = append(owedRoots, t.Root())
			}
		}
	}
	fold(vf.held[:from-vf.v])
	rootFrom := t.Root()
	switch {
	case from == n:
		if len(f.Proof) != 0 {
			return nil, fail(CheckFrame, 0, "a proof from a tree to itself")
		}
		if rootFrom != cp.Hash {
			return nil, fail(CheckTree, vf.v+1, "events %d-%d received do not form the signed tree of %d events", vf.v+1, n, n)
		}
	case from == 0:
	default:
		if err := tlog.CheckTree(tlogHashes(f.Proof), n, cp.Hash, from, rootFrom); err != nil {
			if from == vf.v && vf.last != nil {
				return nil, fail(CheckConsistency, 0, "the checkpoint does not extend the tree of %d events verified before (a fork): %v", from, err)
			}
			// Either the events since the last checkpoint or the new
			// checkpoint are not the log's. A proof between the two
			// checkpoints tells which: none can tie a fork to the
			// checkpoint verified before.
			if vf.last != nil && vf.last.Size < n {
				if p, perr := vf.c.Consistency(ctx, vf.last.Size, n); perr == nil && tlog.CheckTree(p, n, cp.Hash, vf.last.Size, vf.last.Hash) != nil {
					return nil, fail(CheckConsistency, 0, "the checkpoint does not extend the checkpoint of %d events verified before (a fork)", vf.last.Size)
				}
			}
			return nil, fail(CheckTree, vf.v+1, "events %d-%d received are not a prefix of the signed tree of %d events: %v", vf.v+1, from, n, err)
		}
	}
	upto := from
	if n <= cur {
		fold(vf.held[from-vf.v : n-vf.v])
		if t.Root() != cp.Hash {
			first := vf.locate(ctx, cp, from+1, n)
			return nil, fail(CheckTree, first, "events %d-%d received are not the leaves of the signed tree of %d events: the server showed this reader another history", from+1, n, n)
		}
		upto = n
	}
	// This checkpoint holds: the events now verified must also form the
	// trees of the checkpoints accepted while behind them. One that they
	// do not is a signed fork.
	for i, root := range owedRoots {
		if o := owed[i]; root != o.cp.Hash {
			return nil, &VerifyError{Check: CheckConsistency, EventID: o.cp.Size, TreeSize: o.cp.Size, Checkpoint: o.note, Previous: signed,
				Reason: fmt.Sprintf("the signed checkpoint of %d events accepted before (while behind it) is not the tree those events form under the checkpoint of %d: a fork", o.cp.Size, n)}
		}
	}
	vf.owed = owed[len(owedRoots):]
	done := vf.held[:upto-vf.v]
	if len(done) > 0 {
		vf.vprev = done[len(done)-1].Hash
	}
	vf.held = slices.Clone(vf.held[upto-vf.v:])
	vf.heldBytes = 0
	for _, e := range vf.held {
		vf.heldBytes += 256 + int64(len(e.Kind)+len(e.Source)+len(e.Timestamp)+len(e.Payload))
	}
	vf.tree, vf.v, vf.last, vf.lastNote = t, upto, &cp, signed
	if upto < n && (len(vf.owed) == 0 || vf.owed[len(vf.owed)-1].cp.Size < n) {
		// Accepted on its proof from where this reader is: the events
		// up to it must still form its tree when they arrive.
		vf.owed = append(vf.owed, owedCheckpoint{cp, signed})
	}
	if vf.opt.OnCheckpoint != nil {
		vf.opt.OnCheckpoint(cp, signed)
	}
	out := done[:0:0]
	for i := range done {
		if vf.keepKind(&done[i]) {
			out = append(out, done[i])
		}
	}
	return out, nil
}

// open checks a checkpoint's signature by any log key and its origin.
func (vf *verifier) open(signed []byte) (verify.Checkpoint, error) {
	var err error
	for _, v := range vf.logKeys {
		var cp verify.Checkpoint
		if cp, err = verify.OpenCheckpoint(signed, v, vf.opt.Origin); err == nil {
			return cp, nil
		}
	}
	return verify.Checkpoint{}, err
}

// anchor learns the tree of the first start events from the first signed
// checkpoint: the inclusion proof of event start in it, checked against
// its root, holds the subtrees to the left of the event.
func (vf *verifier) anchor(ctx context.Context, cp verify.Checkpoint) error {
	p, err := vf.c.InclusionProof(ctx, vf.start, cp.Size)
	if err != nil {
		return fmt.Errorf("client: tail: the inclusion proof of event %d to start from: %w", vf.start, err)
	}
	t, err := verify.TreeFromInclusion(cp.Size, cp.Hash, vf.start-1, verify.LeafHash(vf.vprev), tlog.RecordProof(p.Proof))
	if err != nil {
		return &VerifyError{Check: CheckTree, EventID: vf.start, TreeSize: cp.Size, Reason: fmt.Sprintf("the event the tail starts after is not in the signed tree: %v", err)}
	}
	vf.tree, vf.anchored = t, true
	return nil
}

// locate finds the first of events lo..hi (held) that is not leaf id−1 of
// cp's tree, by the server's inclusion proofs, to name it in the error.
// Once one event differs every later one does (each hashes the one before),
// so a binary search finds it. It returns lo when the server does not help.
func (vf *verifier) locate(ctx context.Context, cp verify.Checkpoint, lo, hi int64) int64 {
	in := func(id int64) (bool, error) {
		p, err := vf.c.InclusionProof(ctx, id, cp.Size)
		if err != nil {
			return false, err
		}
		return verify.CheckInclusion(cp, id, vf.held[id-vf.v-1].Hash, p.Proof) == nil, nil
	}
	for lo < hi {
		mid := lo + (hi-lo)/2
		ok, err := in(mid)
		if err != nil {
			return lo
		}
		if ok {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}
