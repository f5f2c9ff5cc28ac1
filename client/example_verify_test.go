package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"
	"time"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

// A tail that verifies every event against the log's signed checkpoints as
// it reads: it yields an event only once a checkpoint covers it, and stops
// with a *client.VerifyError if the server shows it another history than
// the one it signed.
func ExampleClient_Tail_verify() {
	url, logKey, stop := exampleSigningServer()
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _ := client.New(url)
	for i := range 3 {
		c.Append(ctx, client.AppendRequest{Kind: "request_denied", Source: "gateway", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i))})
	}

	after := int64(0)
	opt := client.TailOptions{After: &after, Verify: &client.TailVerify{
		LogKeys: []string{logKey}, // pinned out of band, never taken from the server being checked
	}}
	for ev, err := range c.Tail(ctx, opt) {
		var ve *client.VerifyError
		if errors.As(err, &ve) {
			log.Fatalf("the server showed another history: %s at event %d, tree size %d", ve.Check, ve.EventID, ve.TreeSize)
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("verified", ev.ID, string(ev.Payload))
		if ev.ID == 3 {
			break
		}
	}
	// Output:
	// verified 1 {"n":0}
	// verified 2 {"n":1}
	// verified 3 {"n":2}
}

// exampleSigningServer is exampleServer with a checkpointer signing every
// 50 ms; it also returns the log's verifier key.
func exampleSigningServer() (string, string, func()) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "audit-stream-example")
	if err != nil {
		log.Fatal(err)
	}
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		log.Fatal(err)
	}
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		log.Fatal(err)
	}
	_, key, err := checkpoint.GenerateKey("example.com/audit")
	if err != nil {
		log.Fatal(err)
	}
	cps, err := checkpoint.Open(ctx, st, led.Feed(), checkpoint.Options{Origin: "example.com/audit", Key: key, Interval: 50 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); cps.Run(cctx) }()
	srv := httptest.NewServer(httpapi.New(st, led, httpapi.Options{Checkpoints: cps}))
	return srv.URL, key.VerifierKey, func() {
		srv.Close()
		led.Close(ctx)
		cancel()
		<-done
		st.Close()
		os.RemoveAll(dir)
	}
}
