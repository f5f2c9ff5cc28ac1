package httpapi

// AuthCounts exposes the refusal counters to the external tests.
func AuthCounts(s *Server) (unauthorized, forbidden, limited int64) { return s.authCounts() }
