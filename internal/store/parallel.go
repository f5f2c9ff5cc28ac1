package store

import (
	"context"

	"github.com/audit-stream/audit-stream/event"
)

// Scanner is the part of a store ScanParallel reads.
type Scanner interface {
	Scan(ctx context.Context, f Filter, limit int, fn func(*event.Event) error) error
}

// ScanParallel is Scan over the bounded id range (f.After, f.Until] using
// several concurrent range scans, delivering events to fn in id order. A
// single scan is bound to one core by the database driver; verification and
// export of a large log are not. Memory is bounded by about
// (workers+2) × chunk events.
func ScanParallel(ctx context.Context, st Scanner, f Filter, workers, chunk int, fn func(*event.Event) error) error {
	if f.Until <= f.After {
		return nil
	}
	if workers <= 1 {
		return st.Scan(ctx, f, 0, fn)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type part struct {
		events []event.Event
		err    error
		done   chan struct{}
	}
	ordered := make(chan *part, workers)
	sem := make(chan struct{}, workers)
	// Parts' event buffers are reused: at a million events, allocating
	// one per chunk was a good part of the garbage a scan made.
	free := make(chan []event.Event, workers+1)
	go func() {
		defer close(ordered)
		for lo := f.After; lo < f.Until; lo += int64(chunk) {
			p := &part{done: make(chan struct{})}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case ordered <- p:
			case <-ctx.Done():
				<-sem
				return
			}
			sub := f
			sub.After, sub.Until = lo, min(lo+int64(chunk), f.Until)
			go func() {
				defer func() { <-sem; close(p.done) }()
				select {
				case p.events = <-free:
				default:
					p.events = make([]event.Event, 0, chunk)
				}
				p.err = st.Scan(ctx, sub, 0, func(e *event.Event) error {
					p.events = append(p.events, *e) // Payload is fresh per event
					return nil
				})
			}()
		}
	}()
	for p := range ordered {
		<-p.done
		if p.err != nil {
			cancel()
			drain(ordered)
			return p.err
		}
		for i := range p.events {
			if err := fn(&p.events[i]); err != nil {
				cancel()
				drain(ordered)
				return err
			}
		}
		clear(p.events) // let the payloads go
		select {
		case free <- p.events[:0]:
		default:
		}
	}
	return parent.Err()
}

func drain[T any](c chan T) {
	for range c {
	}
}
