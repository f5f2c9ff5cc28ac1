package httpapi

import (
	"context"
	"net/http"
	"time"
)

// Whole-log reads (/verify, /export) use every core for as long as they run.
// A few at once would leave the sequencer no CPU, so they take a slot of a
// small semaphore and, when none is free, are refused at once with a 503 and
// Retry-After rather than queued: a client that retries later costs nothing
// meanwhile, a queued one holds a connection and a goroutine.

// heavyRead takes a slot for a whole-log read, or returns the 503.
func (s *Server) heavyRead() (release func(), err error) {
	return trySlot(s.heavy, 2, "too many whole-log reads (/verify, /export, payload and text queries) in progress (--max-heavy-reads); retry later")
}

// heavyReadTo takes a whole-log read slot, as heavyRead, and bounds a
// range's end by the head: until, or the head when until is unset or past it.
func (s *Server) heavyReadTo(ctx context.Context, until int64, set bool) (release func(), bounded int64, err error) {
	release, err = s.heavyRead()
	if err != nil {
		return nil, 0, err
	}
	head, err := s.st.Head(ctx)
	if err != nil {
		release()
		return nil, 0, err
	}
	if !set || until > head.ID {
		until = head.ID
	}
	return release, until, nil
}

// trySlot takes a slot of sem, or answers 503 with Retry-After and detail at
// once when every slot is taken.
func trySlot(sem chan struct{}, retryAfter int, detail string) (release func(), err error) {
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	default:
		p := problem(http.StatusServiceUnavailable, detail)
		p.retryAfter = retryAfter
		return nil, p
	}
}

// writeDeadline arms a write deadline of WriteTimeout on w now and again at
// every call of the returned function: a client that stops reading cannot
// hold the handler (and its heavy-read slot) longer than that, even if the
// handler spends a while between writes.
func (s *Server) writeDeadline(w http.ResponseWriter) (rearm func()) {
	rc := http.NewResponseController(w)
	rearm = func() { _ = rc.SetWriteDeadline(time.Now().Add(s.opt.WriteTimeout)) }
	rearm()
	return rearm
}

// HeavyCheckBytes is the size from which checking payloads against their
// kinds' schemas takes a slot of MaxHeavyChecks. A schema check is linear in
// the payload but may cost a hundred times its parse (a pattern or
// uniqueItems over a megabyte): bounding how many run at once keeps the
// rest of the CPU for everything else, whatever producers send.
const HeavyCheckBytes = 64 << 10

// heavyCheck takes a slot for checking n bytes of payloads against schemas,
// or answers 503 when every slot is taken. Smaller checks take none.
func (s *Server) heavyCheck(n int) (release func(), err error) {
	if n < HeavyCheckBytes {
		return func() {}, nil
	}
	return trySlot(s.checks, 1, "too many large payloads are being checked against their kinds' schemas; retry shortly")
}
