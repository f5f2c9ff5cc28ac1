package httpapi

// AuthCounts exposes the refusal counters to the external tests.
func AuthCounts(s *Server) (unauthorized, forbidden, limited int64) { return s.authCounts() }

// HoldHeavyChecks takes every slot of MaxHeavyChecks until release is called.
func HoldHeavyChecks(s *Server) (release func()) {
	n := cap(s.checks)
	for range n {
		s.checks <- struct{}{}
	}
	return func() {
		for range n {
			<-s.checks
		}
	}
}
