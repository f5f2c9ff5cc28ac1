package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/prodsig"
)

var benchClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func benchPost(b *testing.B, url, token, key, body string) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	res, err := benchClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 201 {
		b.Fatalf("status %d", res.StatusCode)
	}
}

// BenchmarkBatchAppend: durable appends over HTTP in batches of 1,000
// events (fsync per commit), from 1 and from 4 concurrent clients.
func BenchmarkBatchAppend(b *testing.B) {
	var sb strings.Builder
	sb.WriteByte('[')
	for i := 0; i < 1000; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"kind":"request_allowed","source":"gateway-%d","payload":{"request_id":"req-%06d","path":"/api/v1/orders","decision":"allow"}}`, i%4, i)
	}
	sb.WriteByte(']')
	body := sb.String()
	for _, clients := range []int{1, 4} {
		b.Run("clients="+strconv.Itoa(clients), func(b *testing.B) {
			env := apitest.Start(b, apitest.Options{})
			b.SetBytes(int64(len(body)))
			b.SetParallelism(clients) // × GOMAXPROCS goroutines
			b.ResetTimer()
			if clients == 1 {
				for i := 0; i < b.N; i++ {
					benchPost(b, env.URL+"/events/batch", "", "", body)
				}
			} else {
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						benchPost(b, env.URL+"/events/batch", "", "", body)
					}
				})
			}
			b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkSingleAppend: one event per request from 32 concurrent clients,
// open (no token, no key) against a producer token with a fresh
// Idempotency-Key on every request. Compare the events/s of the two.
func BenchmarkSingleAppend(b *testing.B) {
	const body = `{"kind":"request_allowed","source":"billing","payload":{"request_id":"req-1","decision":"allow"}}`
	for _, mode := range []string{"open", "auth+idempotency"} {
		b.Run(mode, func(b *testing.B) {
			env := apitest.Start(b, apitest.Options{})
			token := ""
			if mode != "open" {
				token, _ = mint(b, env.Store, auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}, nil)
			}
			var seq atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					key := ""
					if token != "" {
						key = "key-" + strconv.FormatInt(seq.Add(1), 10)
					}
					benchPost(b, env.URL+"/events", token, key, body)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkSchemaAppend: durable single appends over HTTP from 16 clients,
// of a kind without a schema against one whose payload is checked against
// a typical schema (every member typed, a pattern, a format, a bound).
// Compare the events/s of the two.
func BenchmarkSchemaAppend(b *testing.B) {
	cat := testCatalog(b, `
kinds:
  - name: request_checked
    description: request_allowed, with a schema
    schema:
      type: object
      required: [request_id, user, decision]
      additionalProperties: false
      properties:
        request_id: {type: string, pattern: "^req-[0-9]+$"}
        user: {type: string, format: email}
        decision: {enum: [allow, deny]}
        latency_ms: {type: number, minimum: 0}
`)
	const payload = `{"request_id":"req-1","user":"alice@example.com","decision":"allow","latency_ms":12.5}`
	for _, kind := range []string{"request_allowed", "request_checked"} {
		name := map[string]string{"request_allowed": "none", "request_checked": "schema"}[kind]
		b.Run(name, func(b *testing.B) {
			env := apitest.Start(b, apitest.Options{API: httpapi.Options{Kinds: cat}})
			body := `{"kind":"` + kind + `","source":"billing","payload":` + payload + `}`
			b.SetParallelism(8) // × GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					benchPost(b, env.URL+"/events", "", "", body)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkSignedAppend: durable appends from a producer token without a
// key against one whose events are signed (the server checks every
// signature and stores it for the replay check), one event per request
// from 16 clients and batches of 500 from 2. The requests are built and
// signed before the timer starts, so the figure is the server's. Compare
// the events/s of unsigned and signed.
func BenchmarkSignedAppend(b *testing.B) {
	for _, batch := range []int{1, 500} {
		for _, mode := range []string{"unsigned", "signed"} {
			b.Run(fmt.Sprintf("batch=%d/%s", batch, mode), func(b *testing.B) {
				env := apitest.Start(b, apitest.Options{})
				signer, vkey := producerKey(b, "billing.example.com")
				spec := auth.Spec{Roles: []string{"producer"}, Sources: []string{"billing"}}
				if mode == "signed" {
					spec.SigningKey = vkey
				}
				token, _ := mint(b, env.Store, spec, nil)
				path := "/events"
				if batch > 1 {
					path = "/events/batch"
				}
				type request struct{ body, sig string }
				reqs := make([]request, b.N)
				for n := range reqs {
					var sb strings.Builder
					if batch > 1 {
						sb.WriteByte('[')
					}
					for i := range batch {
						if i > 0 {
							sb.WriteByte(',')
						}
						fmt.Fprintf(&sb, `{"kind":"request_allowed","source":"billing","payload":{"request_id":"req-%d-%d","decision":"allow"}}`, n, i)
					}
					if batch > 1 {
						sb.WriteByte(']')
					}
					reqs[n].body = sb.String()
					if mode == "signed" {
						reqs[n].sig = signBody(b, signer, reqs[n].body, batch > 1)
					}
				}
				var next atomic.Int64
				if batch == 1 {
					b.SetParallelism(8) // × GOMAXPROCS goroutines
				}
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						r := reqs[next.Add(1)-1]
						req, _ := http.NewRequest("POST", env.URL+path, strings.NewReader(r.body))
						req.Header.Set("Authorization", "Bearer "+token)
						if r.sig != "" {
							req.Header.Set(prodsig.HeaderName, r.sig)
						}
						res, err := benchClient.Do(req)
						if err != nil {
							b.Fatal(err)
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode != 201 {
							b.Fatalf("status %d", res.StatusCode)
						}
					}
				})
				b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}
