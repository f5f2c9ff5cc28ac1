package verify

import (
	"context"
	"errors"
	"runtime"

	"github.com/audit-stream/audit-stream/event"
)

// Source delivers events in ascending id order to fn. The *event.Event may be
// reused after fn returns, but not its Payload: Stream keeps it. An error from fn must stop the source and be
// returned by it.
type Source func(ctx context.Context, fn func(*event.Event) error) error

// StreamOptions tunes Stream.
type StreamOptions struct {
	// Workers re-hash events in parallel; 0 means GOMAXPROCS.
	Workers int
	// Start continues a walk after a trusted head instead of from event 1.
	Start *Chain
	// Visit, if set, sees every event that passed, in order, with its hash.
	// An error from it stops the walk and is returned.
	Visit func(e *event.Event) error
}

const streamBatch = 256

type hashBatch struct {
	events []event.Event
	hashes []event.Hash
	done   chan struct{}
}

var errStop = errors.New("verify: stop")

// Stream walks the whole chain that src delivers, in bounded memory: events
// travel in small batches, are re-hashed by parallel workers and are checked
// in order. The returned error is an I/O or Visit error; a broken chain is
// not an error but a Report with Valid false.
func Stream(ctx context.Context, src Source, opt StreamOptions) (Report, error) {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	chain := opt.Start
	if chain == nil {
		chain = NewChain()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// ordered carries batches in id order to the checker; work carries the
	// same batches to the hashers. The bounded channels bound memory.
	ordered := make(chan *hashBatch, 4*workers)
	work := make(chan *hashBatch, 4*workers)
	free := make(chan *hashBatch, 8*workers+2)

	for range workers {
		go func() {
			var buf []byte
			for b := range work {
				for i := range b.events {
					b.hashes[i], buf = b.events[i].ComputeHash(buf)
				}
				close(b.done)
			}
		}()
	}

	srcErr := make(chan error, 1)
	go func() {
		defer close(ordered)
		defer close(work)
		cur := newBatch(free)
		flush := func() bool {
			select {
			case ordered <- cur:
			case <-ctx.Done():
				return false
			}
			work <- cur
			cur = newBatch(free)
			return true
		}
		err := src(ctx, func(e *event.Event) error {
			cur.events = append(cur.events, *e) // Payload is fresh per event
			if len(cur.events) == streamBatch && !flush() {
				return errStop
			}
			return nil
		})
		if err == nil && len(cur.events) > 0 {
			flush()
		}
		srcErr <- err
	}()

	var breakErr *ChainError
	var visitErr error
	for b := range ordered {
		<-b.done
		if breakErr == nil && visitErr == nil {
			for i := range b.events {
				if err := chain.AddHashed(&b.events[i], b.hashes[i]); err != nil {
					breakErr = err.(*ChainError)
					cancel()
					break
				}
				if opt.Visit != nil {
					if visitErr = opt.Visit(&b.events[i]); visitErr != nil {
						cancel()
						break
					}
				}
			}
		}
		select {
		case free <- b:
		default:
		}
	}
	err := <-srcErr
	if visitErr != nil {
		return chain.Report(breakErr), visitErr
	}
	if breakErr != nil {
		return chain.Report(breakErr), nil
	}
	if err != nil && !errors.Is(err, errStop) {
		return chain.Report(nil), err
	}
	return chain.Report(nil), nil
}

func newBatch(free chan *hashBatch) *hashBatch {
	select {
	case b := <-free:
		b.events = b.events[:0]
		b.done = make(chan struct{})
		return b
	default:
		return &hashBatch{
			events: make([]event.Event, 0, streamBatch),
			hashes: make([]event.Hash, streamBatch),
			done:   make(chan struct{}),
		}
	}
}
