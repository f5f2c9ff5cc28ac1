package sqlite

// SetTimeBlock makes the store's time map summarize blocks of n ids, so
// that a small test log spans many blocks.
func SetTimeBlock(s *Store, n int64) { s.times.SetBlock(n) }
