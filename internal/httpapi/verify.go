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
	if head.ID == 0 {
		return writeJSON(w, http.StatusOK, verify.TreeReport{Report: verify.Report{Valid: true}, RootHash: event.Hash(verify.EmptyTreeHash).String()})
	}
	src := func(ctx context.Context, fn func(*event.Event) error) error {
		return store.ScanParallel(ctx, s.st, store.Filter{Until: head.ID}, runtime.GOMAXPROCS(0), 8192, fn)
	}
	rep, err := verify.StreamTree(r.Context(), src, verify.StreamOptions{}, &verify.Tree{})
	if err != nil {
		return err
	}
	if rep.Valid && rep.Checked != head.ID {
		// Every event read was fine, but some were missing at the end.
		rep.Fail(rep.Checked+1, "log ends at event %d but the head is %d", rep.Checked, head.ID)
	}
	if rep.Valid {
		stored, err := tlog.TreeHash(head.ID, hashReader{r.Context(), s.st})
		if err != nil {
			return fmt.Errorf("verify: stored tree hash: %w", err)
		}
		if got := event.Hash(stored).String(); got != rep.RootHash {
			rep.Fail(0, "Merkle root mismatch at tree size %d: the stored tree has %s, the events give %s", head.ID, got, rep.RootHash)
		}
	}
	return writeJSON(w, http.StatusOK, rep)
}
