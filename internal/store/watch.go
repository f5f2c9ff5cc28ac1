package store

import (
	"context"
	"sync"
)

// HeadWatchers is the WatchHead side of a backend: it fans heads out to
// watchers, each through a one-slot channel that keeps only the newest head,
// so a slow watcher never blocks the committer. The zero value is ready.
type HeadWatchers struct {
	mu     sync.Mutex
	last   Head
	subs   map[*watcher]struct{}
	closed bool
}

type watcher struct {
	ch   chan Head
	mu   sync.Mutex // orders sends on ch with its close
	done bool
}

// Watch registers a watcher until ctx ends or Close.
func (w *HeadWatchers) Watch(ctx context.Context) <-chan Head {
	s := &watcher{ch: make(chan Head, 1)}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		close(s.ch)
		return s.ch
	}
	if w.subs == nil {
		w.subs = make(map[*watcher]struct{})
	}
	w.subs[s] = struct{}{}
	w.mu.Unlock()
	context.AfterFunc(ctx, func() {
		w.mu.Lock()
		delete(w.subs, s)
		w.mu.Unlock()
		s.close()
	})
	return s.ch
}

// Publish sends h to every watcher unless it is older than a head already
// published.
func (w *HeadWatchers) Publish(h Head) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if h.ID < w.last.ID || w.closed {
		return
	}
	w.last = h
	for s := range w.subs {
		s.send(h)
	}
}

// Close closes every watcher's channel; later Watch calls get a closed one.
func (w *HeadWatchers) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for s := range w.subs {
		s.close()
	}
	w.subs = nil
}

func (s *watcher) send(h Head) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return
	}
	select {
	case <-s.ch: // drop the older head the watcher has not taken yet
	default:
	}
	s.ch <- h
}

func (s *watcher) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		s.done = true
		close(s.ch)
	}
}
