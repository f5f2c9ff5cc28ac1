package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http/httptest"
	"os"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/verify"
)

// exampleServer runs the real API on a real SQLite file, as
// `audit-stream serve` would, and returns its URL and a stop function.
func exampleServer() (string, func()) {
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
	api := httpapi.New(st, led, httpapi.Options{})
	srv := httptest.NewServer(api)
	return srv.URL, func() {
		srv.Close()
		led.Close(ctx)
		st.Close()
		os.RemoveAll(dir)
	}
}

func Example() {
	url, stop := exampleServer() // e.g. "http://localhost:8093"
	defer stop()
	ctx := context.Background()

	c, err := client.New(url)
	if err != nil {
		log.Fatal(err)
	}

	// Producers append; each call returns once the event is durable.
	for _, path := range []string{"/admin", "/billing"} {
		ev, err := c.Append(ctx, client.AppendRequest{
			Kind:    "request_denied",
			Source:  "gateway",
			Payload: json.RawMessage(fmt.Sprintf(`{"path": %q}`, path)),
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("appended", ev.ID, ev.Kind)
	}

	// Errors keep the server's problem detail.
	_, err = c.Append(ctx, client.AppendRequest{Kind: "requst_denied", Source: "gateway"})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status, e.Detail)
	}

	// Consumers tail from any point: here the whole history, then live.
	// A dropped connection is resumed after the last event yielded.
	after := int64(0)
	chain := verify.NewChain()
	for ev, err := range c.Tail(ctx, client.TailOptions{After: &after, Kinds: []string{"request_denied"}}) {
		if err != nil {
			log.Fatal(err)
		}
		// Every event can be re-hashed and chained on the client side.
		if err := chain.Add(&ev); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("tail %d %s %s\n", ev.ID, ev.Source, ev.Payload)
		if ev.ID == 2 {
			break
		}
	}

	rep, err := c.Verify(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("valid:", rep.Valid, "checked:", rep.Checked)
	// Output:
	// appended 1 request_denied
	// appended 2 request_denied
	// 422 kind: unknown kind "requst_denied" (did you mean "request_denied"? GET /kinds lists all 22)
	// tail 1 gateway {"path":"/admin"}
	// tail 2 gateway {"path":"/billing"}
	// valid: true checked: 2
}
