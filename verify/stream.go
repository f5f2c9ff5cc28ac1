package verify

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/audit-stream/audit-stream/event"
)

// Source delivers events in ascending id order to fn. The *event.Event may be
// reused after fn returns, but not its Payload: Stream keeps it. An error from fn must stop the source and be
// returned by it.
type Source func(ctx context.Context, fn func(*event.Event) error) error

// RawSource delivers events still encoded, in ascending id order, one to
// each call of fn. The bytes may be reused after fn returns. An error from
// fn must stop the source and be returned by it.
type RawSource func(ctx context.Context, fn func(raw []byte) error) error

// Decoder decodes one encoded event; event.ParseStored is one. The event it
// returns must not share memory with the input.
type Decoder func(raw []byte) (event.Event, error)

// DecodeError is an event a Decoder rejected: the log is broken at that
// position.
type DecodeError struct {
	At  int64 // position in the source, from 1
	Err error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("event #%d does not parse: %v", e.At, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// StreamOptions tunes Stream.
type StreamOptions struct {
	// Workers re-hash events in parallel; 0 means GOMAXPROCS.
	Workers int
	// Visit, if set, sees every event that passed, in order, with its hash.
	// An error from it stops the walk and is returned.
	Visit func(e *event.Event) error
}

const streamBatch = 256

type hashBatch struct {
	events []event.Event
	hashes []event.Hash

	// Raw batches: the encoded events back to back in raw, split at ends,
	// and the position in the source of the first one.
	raw   []byte
	ends  []int
	first int64
	err   *DecodeError // set by the worker: events holds those before it

	done chan struct{}
}

var errStop = errors.New("verify: stop")

// Stream walks the whole chain that src delivers, in bounded memory: events
// travel in small batches, are re-hashed by parallel workers and are checked
// in order. The returned error is an I/O or Visit error; a broken chain is
// not an error but a Report with Valid false.
func Stream(ctx context.Context, src Source, opt StreamOptions) (Report, error) {
	return stream(ctx, func(ctx context.Context, add func() *hashBatch) error {
		return src(ctx, func(e *event.Event) error {
			b := add()
			if b == nil {
				return errStop
			}
			b.events = append(b.events, *e) // Payload is fresh per event
			return nil
		})
	}, nil, opt)
}

// StreamRaw is Stream over encoded events: the workers decode them as well
// as re-hash them, so decoding, often the larger cost, runs in parallel too.
// An event that does not decode ends the walk there; every event before it
// is checked, and if they pass the error is a *DecodeError.
func StreamRaw(ctx context.Context, src RawSource, decode Decoder, opt StreamOptions) (Report, error) {
	return stream(ctx, func(ctx context.Context, add func() *hashBatch) error {
		return src(ctx, func(raw []byte) error {
			b := add()
			if b == nil {
				return errStop
			}
			b.raw = append(b.raw, raw...)
			b.ends = append(b.ends, len(b.raw))
			return nil
		})
	}, decode, opt)
}

// stream runs the pipeline. fill calls add before each event it puts in the
// batch add returns; add returns nil once the walk is over.
func stream(ctx context.Context, fill func(ctx context.Context, add func() *hashBatch) error, decode Decoder, opt StreamOptions) (Report, error) {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	chain := NewChain()
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
				if decode != nil {
					b.decode(decode)
				}
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
		var cur *hashBatch
		var n int64 // events handed to batches so far
		flush := func() bool {
			select {
			case ordered <- cur:
			case <-ctx.Done():
				return false
			}
			work <- cur
			cur = nil
			return true
		}
		err := fill(ctx, func() *hashBatch {
			if cur != nil && cur.len() == streamBatch && !flush() {
				return nil
			}
			if cur == nil {
				cur = newBatch(free)
				cur.first = n + 1
			}
			n++
			return cur
		})
		// Even after an error, so that the events before it are checked.
		if cur != nil && cur.len() > 0 {
			flush()
		}
		srcErr <- err
	}()

	var breakErr *ChainError
	var visitErr error
	var decodeErr *DecodeError
	for b := range ordered {
		<-b.done
		if breakErr == nil && visitErr == nil && decodeErr == nil {
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
			if breakErr == nil && visitErr == nil && b.err != nil {
				decodeErr = b.err
				cancel()
			}
		}
		select {
		case free <- b:
		default:
		}
	}
	err := <-srcErr
	switch {
	case visitErr != nil:
		return chain.Report(breakErr), visitErr
	case breakErr != nil:
		return chain.Report(breakErr), nil
	case decodeErr != nil:
		return chain.Report(nil), decodeErr
	case err != nil && !errors.Is(err, errStop):
		return chain.Report(nil), err
	}
	return chain.Report(nil), nil
}

// len is the number of events in the batch, decoded or not.
func (b *hashBatch) len() int {
	if len(b.ends) > 0 {
		return len(b.ends)
	}
	return len(b.events)
}

// decode turns the raw events into events, stopping at the first that
// does not decode.
func (b *hashBatch) decode(decode Decoder) {
	start := 0
	for i, end := range b.ends {
		e, err := decode(b.raw[start:end])
		if err != nil {
			b.err = &DecodeError{At: b.first + int64(i), Err: err}
			return
		}
		b.events = append(b.events, e)
		start = end
	}
}

func newBatch(free chan *hashBatch) *hashBatch {
	select {
	case b := <-free:
		clear(b.events) // drop the payloads the batch held
		b.events = b.events[:0]
		b.raw, b.ends, b.err = b.raw[:0], b.ends[:0], nil
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
