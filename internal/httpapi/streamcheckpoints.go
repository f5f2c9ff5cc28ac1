package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/sse"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint frames on /stream (?checkpoints=true): the stream interleaves
// the log's signed checkpoints — what GET /checkpoint serves, so the
// cosigned one when witnesses are configured — with its events, each with
// a consistency proof, so that a subscriber checks as it reads that the
// events it is shown are the log every other reader and every witness is
// shown. The frames are opt-in: the original's clients take every frame
// for an event, and would break on one that is not.
//
// A frame for a checkpoint of size N carries a proof from a size F whose
// root the subscriber can compute from what it was sent:
//
//   - once the subscriber has been sent every event up to N, F is where the
//     previous frame left it (the size of the previous checkpoint, or the
//     position the stream started from, its first frame being from there),
//     and the events F+1…N it was sent must fold into N's root;
//   - while it is behind N (replaying history, or catching up from the
//     store), N is sent again every catchUpEvents events with F the
//     position it has reached, so a verifying reader need not hold the
//     whole replay before it can check any of it; the first frame comes at
//     once, from the start position, so a reader resuming mid-log learns a
//     signed tree to anchor to before the first event.
//
// A checkpoint smaller than the start position is never sent: it vouches
// for nothing the subscriber will be shown.

// catchUpEvents is how many events a subscriber behind the latest
// checkpoint is sent between two frames of it.
const catchUpEvents = 4096

// signedCheckpoint is a checkpoint with its signed note.
type signedCheckpoint struct {
	cp   verify.Checkpoint
	note []byte
}

// checkpointFollower tracks, for one subscriber, the checkpoints to send
// and where its previous frame left it.
type checkpointFollower struct {
	s      *Server
	latest atomic.Pointer[signedCheckpoint]
	wake   chan struct{}

	anchor int64 // the tree size the subscriber's verified tree reaches
	sent   bool
}

// followCheckpoints starts following the served checkpoints for a
// subscriber starting after event start, until ctx ends.
func (s *Server) followCheckpoints(ctx context.Context, checkpoints Checkpoints, start int64) *checkpointFollower {
	f := &checkpointFollower{s: s, wake: make(chan struct{}, 1), anchor: start}
	// The one served now, without waiting: Wait on a done context answers
	// at once when a checkpoint is served, and fails when the cosigner has
	// none a quorum cosigned yet (then the goroutine below waits for it).
	done, cancel := context.WithCancel(ctx)
	cancel()
	size := int64(0)
	if cp, note, err := checkpoints.Wait(done, 0); err == nil {
		f.latest.Store(&signedCheckpoint{cp, note})
		size = cp.Size + 1
	}
	// One goroutine per subscriber that asked for checkpoints, asleep
	// between checkpoints: the checkpointer and the cosigner wake waiters
	// through a channel they close, and have no other subscription.
	go func() {
		for {
			cp, note, err := checkpoints.Wait(ctx, size)
			if err != nil {
				return
			}
			f.latest.Store(&signedCheckpoint{cp, note})
			size = cp.Size + 1
			select {
			case f.wake <- struct{}{}:
			default:
			}
		}
	}()
	return f
}

// C is signalled when a new checkpoint is served.
func (f *checkpointFollower) C() <-chan struct{} { return f.wake }

// next returns the checkpoint frame to send a subscriber that has been
// sent every event up to cursor, or nil when there is none to send.
func (f *checkpointFollower) next(ctx context.Context, cursor int64) ([]byte, error) {
	sc := f.latest.Load()
	if sc == nil || sc.cp.Size < f.anchor {
		return nil, nil
	}
	n := sc.cp.Size
	var from int64
	share := false
	switch {
	case cursor >= n:
		if f.sent && f.anchor == n {
			return nil, nil
		}
		from, share = f.anchor, true
		f.anchor = n
	case !f.sent || cursor-f.anchor >= catchUpEvents:
		from = cursor
		f.anchor = cursor
	default:
		return nil, nil
	}
	f.sent = true
	return f.s.checkpointFrame(ctx, sc, from, share)
}

// checkpointFrame encodes the frame of sc with the proof from size from.
// Subscribers following the live log all ask for the proof from the
// previous checkpoint to the new one: the last few of those frames are
// kept (share), so one proof is read from the store per checkpoint, not
// per subscriber. A catch-up frame's proof is the subscriber's own.
func (s *Server) checkpointFrame(ctx context.Context, sc *signedCheckpoint, from int64, share bool) ([]byte, error) {
	if share {
		if fr := s.cpFrames.get(sc, from); fr != nil {
			return fr, nil
		}
	}
	n := sc.cp.Size
	var proof tlog.TreeProof
	if from > 0 && from < n {
		var err error
		if proof, err = tlog.ProveTree(n, from, hashReader{ctx, s.st}); err != nil {
			return nil, err
		}
	}
	hexes := make([]string, len(proof))
	for i, h := range proof {
		hexes[i] = event.Hash(h).String()
	}
	fr := sse.AppendCheckpointFrame(nil, &sse.Checkpoint{TreeSize: n, From: from, Proof: hexes, Note: string(sc.note)})
	if share {
		s.cpFrames.put(sc, from, fr)
	}
	return fr, nil
}

// frameCache keeps the last few checkpoint frames.
type frameCache struct {
	mu      sync.Mutex
	entries [8]frameEntry
	next    int
}

type frameEntry struct {
	sc    *signedCheckpoint
	from  int64
	frame []byte
}

func (c *frameCache) get(sc *signedCheckpoint, from int64) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		// The note decides, not the size: more cosignatures for the
		// same tree are a new note.
		if e.sc != nil && e.from == from && (e.sc == sc || string(e.sc.note) == string(sc.note)) {
			return e.frame
		}
	}
	return nil
}

func (c *frameCache) put(sc *signedCheckpoint, from int64, frame []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[c.next] = frameEntry{sc, from, frame}
	c.next = (c.next + 1) % len(c.entries)
}

// wantsCheckpoints reads ?checkpoints=: true or false, nothing else.
func wantsCheckpoints(r *http.Request) (bool, error) {
	q := r.URL.Query()
	if !q.Has("checkpoints") {
		return false, nil
	}
	vs := q["checkpoints"]
	if len(vs) > 1 {
		return false, problem(http.StatusBadRequest, "checkpoints is given "+strconv.Itoa(len(vs))+" times; give it once")
	}
	switch vs[0] {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, problem(http.StatusBadRequest, "checkpoints must be true or false, got "+strconv.Quote(vs[0]))
}
