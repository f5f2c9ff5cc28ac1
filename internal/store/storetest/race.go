//go:build race

package storetest

// raceEnabled: instrumented, the SQLite driver (transpiled C) reads rows
// many times slower, so the query cases run over a smaller log.
const raceEnabled = true
