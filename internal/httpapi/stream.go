package httpapi

import (
	"bufio"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/sse"
)

// sseFrames encodes events for the ledger's feed as Server-Sent Events
// frames: the feed encodes each event once for every /stream subscriber.
var sseFrames = &ledger.Encoder{Append: sse.AppendFrame, Size: sse.FrameSize}

// streamChunk is how many events a subscriber pulls per read.
const streamChunk = 512

// streamBuffer is the size of the write buffer a subscriber borrows for one
// burst: a burst larger than this goes out in several writes.
const streamBuffer = 64 << 10

// streamBufs lends write buffers to subscribers only while they write: an idle
// stream holding its own 64 KiB buffer made ten thousand idle streams cost
// 640 MiB.
var streamBufs = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, streamBuffer) }}

// writeBurst writes frames to w through a borrowed buffer and flushes.
func writeBurst(w http.ResponseWriter, rc *http.ResponseController, frames [][]byte) error {
	bw := streamBufs.Get().(*bufio.Writer)
	bw.Reset(w)
	for _, fr := range frames {
		bw.Write(fr)
	}
	err := bw.Flush()
	bw.Reset(nil) // keep no reference to this stream
	streamBufs.Put(bw)
	if err != nil {
		return err
	}
	return rc.Flush()
}

// stream serves GET /stream: Server-Sent Events, one frame per event, in id
// order, resumable by Last-Event-ID or ?after=. The subscriber pulls from the
// ledger's feed, so it can fall arbitrarily far behind without slowing the
// writer or losing an event.
func (s *Server) stream(w http.ResponseWriter, r *http.Request) error {
	f, err := s.filterFromQuery(r)
	if err != nil {
		return err
	}
	feed := s.led.Feed()
	head := feed.Head()
	cursor := head
	if v, ok := resumePoint(r); ok {
		n, ok := parseEventID(v)
		if !ok {
			return problem(http.StatusBadRequest, "after / Last-Event-ID must be a non-negative integer event id, got "+strconv.Quote(v))
		}
		if n > head {
			return problem(http.StatusBadRequest, "after "+v+" is beyond the head of the log ("+strconv.FormatInt(head, 10)+"): the client is ahead of the log")
		}
		cursor = n
	}
	withCheckpoints, err := wantsCheckpoints(r)
	if err != nil {
		return err
	}
	var checkpoints Checkpoints
	if withCheckpoints {
		if checkpoints, err = s.checkpoints(); err != nil {
			return err
		}
	}
	select {
	case s.sema <- struct{}{}:
		defer func() { <-s.sema }()
	default:
		p := problem(http.StatusServiceUnavailable, "too many concurrent streams; retry later")
		p.retryAfter = 5
		return p
	}

	sub := feed.Subscribe(sseFrames)
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	// No chunked encoding: the body runs until the connection closes, as
	// the SSE specification suggests and net/http supports for this
	// header. Then a burst costs one write, where chunking cost three (the
	// chunk header went into net/http's 4 KiB buffer, which flushed, then
	// the rest, then the chunk's CRLF), and clients skip chunk parsing.
	// A stream never ends early enough for its connection to be reused.
	h.Set("Transfer-Encoding", "identity")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	// No server-wide WriteTimeout (it would cut the stream): each burst of
	// writes gets its own deadline, armed before the first byte because the
	// buffers below flush by themselves when full. The deadline is cleared on
	// the way out so it cannot outlive the stream on a kept-alive connection.
	//
	// Re-arming costs a timer update per burst, so a deadline is kept
	// while more than 3/4 of the timeout remains: every write still gets
	// at least that long.
	var deadline time.Time
	arm := func() {
		now := time.Now()
		if deadline.Sub(now) < s.opt.WriteTimeout*3/4 {
			deadline = now.Add(s.opt.WriteTimeout)
			rc.SetWriteDeadline(deadline)
		}
	}
	defer rc.SetWriteDeadline(time.Time{})
	one := make([][]byte, 1)
	writeString := func(s string) error {
		one[0] = []byte(s)
		return writeBurst(w, rc, one)
	}
	// The preamble: the reconnect delay, and the position the stream starts
	// from as a data-less id frame. It dispatches no event, but it sets the
	// EventSource's last event id, so a client that loses the connection
	// before the first event still resumes from where it started instead of
	// from a later head.
	arm()
	if err := writeString("retry: " + strconv.Itoa(s.opt.RetryMillis) + "\nid: " + strconv.FormatInt(cursor, 10) + "\n\n"); err != nil {
		return nil
	}

	heartbeat := time.NewTicker(s.opt.Heartbeat)
	defer heartbeat.Stop()
	ctx := r.Context()
	// Checkpoint frames, when asked for (streamcheckpoints.go). cpWake
	// stays nil otherwise, and a nil channel never fires.
	var follower *checkpointFollower
	var cpWake <-chan struct{}
	sendCheckpoint := func() error { return nil }
	if checkpoints != nil {
		follower = s.followCheckpoints(ctx, checkpoints, cursor)
		cpWake = follower.C()
		sendCheckpoint = func() error {
			fr, err := follower.next(ctx, cursor)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Error("stream checkpoint proof failed", "after", cursor, "err", err)
				}
				return err
			}
			if fr == nil {
				return nil
			}
			arm()
			one[0] = fr
			if err := writeBurst(w, rc, one); err != nil {
				return err
			}
			heartbeat.Reset(s.opt.Heartbeat)
			return nil
		}
		// The first frame right after the preamble: a reader resuming
		// mid-log learns a signed tree to anchor to before any event.
		if err := sendCheckpoint(); err != nil {
			return nil
		}
	}
	token := s.watchStreamToken(r)
	defer token.Stop()
	// Woken only by events this subscriber may want: an idle subscriber
	// costs appends nothing.
	waiter := feed.Watch(f)
	defer waiter.Stop()
	var frames [][]byte
	for {
		if why := token.ended(ctx); why != "" {
			arm()
			writeString(endStreamComment(why))
			s.log.Info("stream ended with its token", "reason", why, "remote", r.RemoteAddr)
			return nil
		}
		// The waiter was registered before this read, so an event
		// published between the read and the wait leaves a wake-up.
		closed := feed.Closed()
		f.After = cursor
		var seen int64
		var err error
		frames, seen, err = sub.Read(ctx, f, streamChunk, frames[:0])
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("stream read failed", "after", cursor, "err", err)
			}
			return nil
		}
		cursor = seen
		if len(frames) > 0 {
			arm()
		}
		// The frames are shared with every other subscriber: copied
		// into the buffer, never modified.
		if len(frames) > 0 {
			err := writeBurst(w, rc, frames)
			clear(frames) // hold no old batch alive while waiting
			if err != nil {
				return nil // the peer is gone or too slow to take a frame
			}
			heartbeat.Reset(s.opt.Heartbeat)
		}
		// After the events it covers, never before: a checkpoint is
		// checked against the events already received.
		if err := sendCheckpoint(); err != nil {
			return nil
		}
		if cursor < feed.Head() {
			continue
		}
		if closed {
			return nil // shutting down, and everything up to the last head was sent
		}
		if len(frames) > 0 && s.opt.StreamLinger > 0 {
			// Just wrote: while events keep coming, sleep one linger
			// and then take everything that arrived meanwhile, rather
			// than waking at every commit. One wake-up and one write
			// then carry many events, which is what lets a thousand
			// subscribers keep up. An event after a quiet spell still
			// goes out at once.
			linger := s.opt.Clock.NewTimer(s.linger())
			select {
			case <-linger.C():
				continue
			case <-ctx.Done():
				linger.Stop()
				return nil
			}
		}
		select {
		case <-waiter.C():
		case <-cpWake: // a new checkpoint: sent after the next read
		case <-token.C(): // re-checked at the top of the loop
		case <-heartbeat.C:
			arm()
			if err := writeString(": keep-alive\n\n"); err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// maxLinger caps the linger StreamBursts stretches.
const maxLinger = time.Second

// linger is how long a subscriber that just wrote sleeps while events keep
// coming: StreamLinger, stretched so that all subscribers together get at
// most StreamBursts bursts a second.
func (s *Server) linger() time.Duration {
	d := s.opt.StreamLinger
	if s.opt.StreamBursts > 0 {
		fair := time.Duration(len(s.sema)) * time.Second / time.Duration(s.opt.StreamBursts)
		d = max(d, min(fair, maxLinger))
	}
	return d
}

// resumePoint returns where the client asked to resume: ?after= wins over
// the Last-Event-ID header.
func resumePoint(r *http.Request) (string, bool) {
	if q := r.URL.Query(); q.Has("after") {
		return q.Get("after"), true
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		return v, true
	}
	return "", false
}

// parseEventID parses a resume point: a decimal event id, 0 meaning "before
// the first event". Signs, spaces and other spellings are refused so that an
// id has one spelling, as in every other place it is used.
func parseEventID(v string) (int64, bool) {
	if v == "" || len(v) > 19 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
