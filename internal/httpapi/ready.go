package httpapi

import (
	"context"
	"errors"
	"net/http"
	"os"
	"sync"
	"time"
)

// readyTimeout bounds one readiness probe: a store that takes longer to
// answer is not ready.
const readyTimeout = 2 * time.Second

// readyCache is how long a probe's verdict answers other probes, so that a
// burst of /readyz requests costs one store read and one file write.
const readyCache = 500 * time.Millisecond

// readiness runs at most one probe at a time and shares its verdict.
type readiness struct {
	mu     sync.Mutex
	at     time.Time
	detail string // "" when ready
}

// readyz serves GET /readyz: 200 when the store answers and the data
// directory takes a write, 503 with the reason otherwise. /healthz stays
// plain liveness, so an orchestrator restarts only a wedged process and
// merely stops routing to one whose disk or database is in trouble.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	detail := s.probeReady(r.Context())
	w.Header().Set("Cache-Control", "no-store")
	if detail != "" {
		return problem(http.StatusServiceUnavailable, detail)
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) probeReady(ctx context.Context) string {
	rd := &s.ready
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if time.Since(rd.at) < readyCache {
		return rd.detail
	}
	// The probe outlives a client that hangs up, so its verdict can be
	// shared.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyTimeout)
	defer cancel()
	rd.detail = s.checkReady(ctx)
	rd.at = time.Now()
	return rd.detail
}

func (s *Server) checkReady(ctx context.Context) string {
	if s.isDraining() {
		return "the server is shutting down"
	}
	if _, err := s.st.Head(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return "the store did not answer within " + readyTimeout.String()
		}
		return "the store does not answer: " + err.Error()
	}
	if s.opt.DataDir == "" {
		return ""
	}
	f, err := os.CreateTemp(s.opt.DataDir, ".readyz-*")
	if err != nil {
		return "the data directory is not writable: " + err.Error()
	}
	name := f.Name()
	_, err = f.Write([]byte("ok\n"))
	if err == nil {
		err = f.Sync()
	}
	f.Close()
	os.Remove(name)
	if err != nil {
		return "the data directory is not writable: " + err.Error()
	}
	return ""
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}
