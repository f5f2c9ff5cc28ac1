package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"runtime"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/verify"
	"golang.org/x/mod/sumdb/tlog"
)

// verify re-walks the chain from storage up to the head as it was when the
// request arrived, so appends may continue meanwhile. It also rebuilds the
// Merkle root from the events and compares it with the stored tree, which
// proofs, tiles and checkpoints are served from.
func (s *Server) verify(w http.ResponseWriter, r *http.Request) error {
	release, err := s.heavyRead()
	if err != nil {
		return err
	}
	defer release()
	s.writeDeadline(w) // the answer is written at the end, to a client that may be gone
	head, err := s.st.Head(r.Context())
	if err != nil {
		return err
	}
	src := func(ctx context.Context, fn func(*event.Event) error) error {
		if head.ID == 0 {
			return nil // Until 0 would mean no bound at all
		}
		return store.ScanParallel(ctx, s.st, store.Filter{Until: head.ID}, runtime.GOMAXPROCS(0), 8192, fn)
	}
	stored := &verify.Target{Size: head.ID, What: "the stored tree", Root: func() (tlog.Hash, error) {
		if head.ID == 0 {
			return verify.EmptyTreeHash, nil
		}
		h, err := tlog.TreeHash(head.ID, hashReader{r.Context(), s.st})
		if err != nil {
			return h, fmt.Errorf("verify: stored tree hash: %w", err)
		}
		return h, nil
	}}
	rep, err := verify.CheckTree(r.Context(), src, stored, verify.StreamOptions{})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}
