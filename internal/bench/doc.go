// Package bench holds the whole-system benchmarks of audit-stream: durable
// appends over HTTP against a bare net/http baseline, verification, queries
// and start-up on a 1,000,000-event store. It has no code outside tests.
//
//	go test -run='^$' -bench=. -benchtime=1x ./internal/bench/
package bench
