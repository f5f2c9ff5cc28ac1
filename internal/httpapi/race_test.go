//go:build race

package httpapi_test

// raceEnabled: the race detector instruments the SQLite driver too (it is
// transpiled C), which makes every row read many times slower.
const raceEnabled = true
