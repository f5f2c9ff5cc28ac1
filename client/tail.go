package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/audit-stream/audit-stream/event"
)

// TailOptions says where a tail starts and what it yields.
type TailOptions struct {
	// After makes the tail start after this event id: &0 yields the whole
	// history, then live events. nil starts at the head of the log as it is
	// when the first connection is made: only events appended later.
	After *int64
	// Kinds and Sources filter the events, as in QueryOptions.
	Kinds   []string
	Sources []string

	// MinBackoff is the first reconnect delay, doubled after each failed
	// attempt up to MaxBackoff, each delay jittered down to half of it.
	// Defaults: the retry the server advertises (else 1 s), and 30 s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// IdleTimeout drops a connection on which nothing, not even the
	// server's keep-alive comment, arrived for this long, so that a peer
	// that vanished without closing the connection is noticed. Default 45 s
	// (three of the server's default heartbeats).
	IdleTimeout time.Duration
	// OnRetry, if set, is called before each reconnect with the reason the
	// last connection ended and the delay before the next one. It must not
	// block for long.
	OnRetry func(err error, wait time.Duration)

	// Verify, if set, makes the tail verify everything it reads against
	// the log's signed checkpoints and yield only events a checkpoint
	// has covered (see TailVerify). The stream is then read unfiltered,
	// since every event is a leaf to check; Kinds and Sources are
	// applied here. A mismatch ends the tail with a *VerifyError.
	Verify *TailVerify
}

var (
	errIdle        = errors.New("client: no data from the server within the idle timeout")
	errStreamEnded = errors.New("client: the server ended the stream (shutting down?)")
)

// Tail follows the log over GET /stream and yields every event matching opt
// exactly once, in id order, for as long as ctx lives. When a connection
// ends (the server restarts, a proxy cuts it, the network fails, nothing
// arrives within IdleTimeout) it reconnects with Last-Event-ID set to the
// last event it yielded, after a capped, jittered exponential backoff, so a
// disconnect never loses or repeats an event.
//
// The sequence ends after yielding a non-nil error, which is one of:
// ctx.Err() when ctx is done; an *Error for a request the server will never
// accept (a 4xx such as an unknown kind, or a resume point beyond the head);
// or an error saying the server broke the protocol. Breaking out of the loop
// closes the connection.
//
//	for ev, err := range c.Tail(ctx, client.TailOptions{Kinds: []string{"request_denied"}}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(ev.ID, ev.Source)
//	}
func (c *Client) Tail(ctx context.Context, opt TailOptions) iter.Seq2[event.Event, error] {
	if opt.MaxBackoff <= 0 {
		opt.MaxBackoff = 30 * time.Second
	}
	if opt.IdleTimeout <= 0 {
		opt.IdleTimeout = 45 * time.Second
	}
	return func(yield func(event.Event, error) bool) {
		t := &tail{c: c, opt: opt, yield: yield, cursor: -1}
		if opt.After != nil {
			if *opt.After < 0 {
				yield(event.Event{}, fmt.Errorf("client: tail: After must not be negative, got %d", *opt.After))
				return
			}
			t.cursor = *opt.After
		}
		if opt.Verify != nil {
			vf, err := newVerifier(c, *opt.Verify, matcher(opt.Kinds, opt.Sources))
			if err != nil {
				yield(event.Event{}, err)
				return
			}
			t.vf = vf
		}
		t.run(ctx)
	}
}

type tail struct {
	c     *Client
	opt   TailOptions
	yield func(event.Event, error) bool

	cursor int64         // last event id passed (yielded or skipped by the filter); -1: the head, not yet known
	retry  time.Duration // the server's advertised reconnect delay, 0 if none
	vf     *verifier     // nil unless verifying (tailverify.go)
}

// matcher is the Kinds and Sources filter, for a verifying tail that
// filters what it verified.
func matcher(kinds, sources []string) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return (len(kinds) == 0 || slices.Contains(kinds, e.Kind)) && (len(sources) == 0 || slices.Contains(sources, e.Source))
	}
}

func (t *tail) run(ctx context.Context) {
	attempt := 0
	for {
		yielded, stop, err := t.connect(ctx)
		if stop {
			return
		}
		if ctx.Err() != nil {
			t.yield(event.Event{}, ctx.Err())
			return
		}
		var verr *VerifyError
		if !isTemporary(err) || errors.As(err, &verr) {
			t.yield(event.Event{}, err)
			return
		}
		if yielded {
			attempt = 0
		}
		wait := t.backoff(attempt)
		var e *Error
		if errors.As(err, &e) && e.RetryAfter > wait {
			wait = min(e.RetryAfter, t.opt.MaxBackoff)
		}
		attempt++
		if t.opt.OnRetry != nil {
			t.opt.OnRetry(err, wait)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			t.yield(event.Event{}, ctx.Err())
			return
		case <-timer.C:
		}
	}
}

// backoff is the delay before reconnect attempt n (0-based): base·2ⁿ capped
// at MaxBackoff, jittered uniformly into its upper half so that many clients
// cut off together do not come back together.
func (t *tail) backoff(n int) time.Duration {
	base := t.opt.MinBackoff
	if base <= 0 {
		base = t.retry
	}
	if base <= 0 {
		base = time.Second
	}
	d := t.opt.MaxBackoff
	if n < 32 && base<<n > 0 && base<<n < d {
		d = base << n
	}
	return d/2 + rand.N(d/2+1)
}

// connect runs one connection. It reports whether it yielded any event,
// whether the consumer or a fatal error ended the tail (stop: nothing more
// may be yielded), and otherwise why the connection ended.
func (t *tail) connect(ctx context.Context) (yielded, stop bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	q := filterQuery(t.opt.Kinds, t.opt.Sources)
	if t.vf != nil {
		q = url.Values{"checkpoints": {"true"}}
		t.cursor = t.vf.resume(t.cursor)
	}
	req, err := t.c.newRequest(ctx, http.MethodGet, "/stream", q, nil)
	if err != nil {
		t.yield(event.Event{}, fmt.Errorf("client: tail: %w", err))
		return false, true, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if t.cursor >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(t.cursor, 10))
	}
	// The watchdog covers the wait for the answer's headers too.
	watchdog := time.AfterFunc(t.opt.IdleTimeout, func() { cancel(errIdle) })
	defer watchdog.Stop()
	resp, err := t.c.hc.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause == errIdle {
			err = errIdle
		}
		return false, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, false, responseError(resp)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, false, &protocolError{fmt.Sprintf("GET /stream answered 200 with Content-Type %q, not text/event-stream", resp.Header.Get("Content-Type"))}
	}
	body := &activityReader{r: resp.Body, timer: watchdog, idle: t.opt.IdleTimeout}
	sse := newSSEReader(body, maxEventBytes)
	preamble := false // a verifying tail's: the position is known
	for {
		f, err := sse.Next()
		if d, ok := sse.Retry(); ok {
			t.retry = d
		}
		if err != nil {
			if cause := context.Cause(ctx); cause == errIdle {
				err = errIdle
			} else if err == io.EOF {
				err = errStreamEnded
			}
			return yielded, false, err
		}
		id, idErr := strconv.ParseInt(f.ID, 10, 64)
		if !f.HasData {
			if t.vf != nil {
				if preamble || idErr != nil {
					continue
				}
				preamble = true
				if err := t.vf.position(ctx, id); err != nil {
					return yielded, false, err
				}
				t.cursor = id
				continue
			}
			// The server's position, sent first on every connection:
			// resume from it even if no event arrives before a
			// disconnect.
			if idErr == nil && id > t.cursor {
				t.cursor = id
			}
			continue
		}
		if f.Event == "checkpoint" {
			// Not an event (it has no id of its own); only a verifying
			// tail asks for them.
			if t.vf == nil {
				continue
			}
			if !preamble {
				return yielded, false, &protocolError{"a checkpoint frame before the stream's position"}
			}
			evs, err := t.vf.checkpoint(ctx, f.Data)
			if err != nil {
				return yielded, false, err
			}
			for _, ev := range evs {
				yielded = true
				if !t.yield(ev, nil) {
					return yielded, true, nil
				}
			}
			continue
		}
		ev, err := event.ParseStored(f.Data)
		if err != nil {
			return yielded, false, &protocolError{"an event frame does not hold an event: " + err.Error()}
		}
		if idErr != nil || id != ev.ID {
			return yielded, false, &protocolError{fmt.Sprintf("frame id %q is not the id of its event (%d)", f.ID, ev.ID)}
		}
		if t.vf != nil {
			if !preamble {
				return yielded, false, &protocolError{"an event before the stream's position"}
			}
			// Held until a checkpoint covers it.
			if err := t.vf.event(ev); err != nil {
				return yielded, false, err
			}
			t.cursor = ev.ID
			continue
		}
		if ev.ID <= t.cursor {
			continue // already yielded: cannot happen with a correct server
		}
		t.cursor = ev.ID
		yielded = true
		if !t.yield(ev, nil) {
			return yielded, true, nil
		}
	}
}

// activityReader restarts the idle watchdog whenever bytes arrive.
type activityReader struct {
	r     io.Reader
	timer *time.Timer
	idle  time.Duration
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.timer.Reset(a.idle)
	}
	return n, err
}
