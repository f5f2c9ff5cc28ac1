package postgres

// SetCopyMin sets the smallest group st writes by COPY.
func SetCopyMin(st *Store, n int) { st.copyMin = n }
