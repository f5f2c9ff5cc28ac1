package client_test

import (
	"context"
	"testing"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/apitest"
)

// BenchmarkTailReplay replays a 20,000-event log from the start over a real
// server, plain (the baseline) and verifying (every event re-hashed, chained
// and folded into the Merkle tree, a checkpoint frame with a consistency
// proof every 4,096 events): the ratio of their ns/event is what
// verification costs a reader catching up.
func BenchmarkTailReplay(b *testing.B) {
	env := apitest.Start(b, apitest.Options{})
	c, _ := client.New(env.URL)
	const n = 20000
	appendEvents(b, c, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*60e9)
	defer cancel()
	if _, _, err := env.Checkpoints.Wait(ctx, n); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name   string
		verify *client.TailVerify
	}{
		{"plain", nil},
		{"verify", &client.TailVerify{LogKeys: []string{env.Key.VerifierKey}}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				zero := int64(0)
				seen := 0
				for ev, err := range c.Tail(ctx, client.TailOptions{After: &zero, Verify: mode.verify}) {
					if err != nil {
						b.Fatal(err)
					}
					if seen++; ev.ID == n {
						break
					}
				}
				if seen != n {
					b.Fatalf("%d events", seen)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}
