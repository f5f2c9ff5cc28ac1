//go:build race

package hostile

// raceEnabled: under -race this test process — the attackers and the
// probe's client — is race-built and runs several times slower (the server
// binary is not: internal/e2e), so attacks are scaled down and the memory
// and latency bounds are loosened or left out: run `go test
// ./internal/hostile/` for those.
const raceEnabled = true
