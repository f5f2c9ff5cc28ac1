//go:build race

package hostile

// raceEnabled: under -race the server binary is race-built too (internal/e2e)
// and runs several times slower in several times the memory, so attacks are
// scaled down and memory and latency bounds are not asserted: run
// `go test ./internal/hostile/` for those.
const raceEnabled = true
