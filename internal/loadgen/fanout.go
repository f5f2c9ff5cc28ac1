package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/client"
)

// fanoutSource marks the fan-out run's events, so subscribers count only
// those even on a server that others append to.
const fanoutSource = "loadgen-fanout"

// fanout runs opt.Producers appending single events while opt.Subscribers
// follow /stream. Each event carries the time it was sent; a subscriber's
// lag is the time from then until it received the event.
func fanout(ctx context.Context, t *target, opt Options) (Result, error) {
	c, err := t.client()
	if err != nil {
		return Result{}, err
	}
	st, err := c.Stats(ctx)
	if err != nil {
		return Result{}, err
	}
	head := st.LastEventID
	subCtx, stopSubs := context.WithCancel(ctx)
	defer stopSubs()
	type sub struct {
		got  atomic.Int64
		lag  histogram
		err  error
		done chan struct{}
	}
	subs := make([]*sub, opt.Subscribers)
	for i := range subs {
		s := &sub{done: make(chan struct{})}
		subs[i] = s
		go func() {
			defer close(s.done)
			for ev, err := range c.Tail(subCtx, client.TailOptions{After: &head, Sources: []string{fanoutSource}}) {
				if err != nil {
					if subCtx.Err() == nil {
						s.err = err
					}
					return
				}
				now := time.Now().UnixNano()
				if sent, ok := sentAt(ev.Payload); ok {
					s.lag.record(time.Duration(now - sent))
				}
				s.got.Add(1)
			}
		}()
	}
	// Tail gives no sign of being connected: give the subscribers time
	// to, bounded.
	if opt.Subscribers > 0 {
		time.Sleep(min(10*time.Second, 300*time.Millisecond+time.Duration(opt.Subscribers)*time.Millisecond))
	}
	r := loop(ctx, string(Fanout), opt.Producers, opt.Duration, opt.Progress,
		func(ctx context.Context, w int, i int64) (int64, error) {
			body := fmt.Appendf(nil, `{"kind":"other","source":%q,"payload":{"sent":"%d","producer":%d,"i":%d}}`,
				fanoutSource, time.Now().UnixNano(), w, i)
			_, err := do(t.hc, t.request(ctx, http.MethodPost, "/events", body), http.StatusCreated)
			return 1, err
		})
	r.Subscribers = opt.Subscribers
	if opt.Subscribers == 0 {
		return r, nil
	}
	// Let the subscribers catch up with every acknowledged event, for at
	// most 5 s: what is still missing then counts as not delivered.
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range subs {
		for s.got.Load() < r.Events && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	stopSubs()
	var lag histogram
	minGot := int64(-1)
	var total int64
	var subErr error
	for _, s := range subs {
		<-s.done
		lag.merge(&s.lag)
		got := s.got.Load()
		total += got
		if minGot < 0 || got < minGot {
			minGot = got
		}
		if s.err != nil && subErr == nil {
			subErr = s.err
		}
	}
	r.DeliveredPerSubMin = float64(minGot) / r.Seconds
	r.DeliveredPerSubMean = float64(total) / float64(len(subs)) / r.Seconds
	r.LagP99 = ms(lag.quantile(0.99))
	if subErr != nil {
		return r, fmt.Errorf("fanout: a subscriber failed: %w", subErr)
	}
	return r, nil
}

// sentAt finds the "sent" member the fan-out producers put in a payload
// without decoding the whole payload.
func sentAt(payload []byte) (int64, bool) {
	const key = `"sent":"`
	i := bytes.Index(payload, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := payload[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(string(rest[:j]), 10, 64)
	return n, err == nil
}
