package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/client"
	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/auth"
	"github.com/audit-stream/audit-stream/internal/httpapi"
	"github.com/audit-stream/audit-stream/internal/loadgen"
)

func benchJSON(t *testing.T, args ...string) loadgen.Report {
	t.Helper()
	code, out, errs := runCmd(t, "", append([]string{"bench"}, append(args, "--json", "--quiet")...)...)
	if code != 0 {
		t.Fatalf("bench %v: exit %d\n%s", args, code, errs)
	}
	var rep loadgen.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench %v: not JSON: %v\n%s", args, err, out)
	}
	if rep.Requests == 0 || rep.Errors != 0 || rep.FirstError != "" {
		t.Fatalf("bench %v: %+v", args, rep)
	}
	return rep
}

func logCount(t *testing.T, url, token string) int64 {
	t.Helper()
	opts := []client.Option{}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	c, err := client.New(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Count
}

// Each workload against a real server: what the tool counts as appended is
// what the log holds, and every report carries the baseline and its ratio.
func TestBenchWorkloads(t *testing.T) {
	t.Parallel()
	env := apitest.Start(t, apitest.Options{})
	rep := benchJSON(t, "append", "--url", env.URL, "--duration", "300ms", "--producers", "2")
	if rep.Events != rep.Requests || rep.Baseline == nil || rep.Baseline.Requests == 0 || rep.Ratio <= 0 ||
		rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max || rep.HeapMaxMB <= 0 {
		t.Fatalf("append: %+v", rep)
	}
	if n := logCount(t, env.URL, ""); n != rep.Events {
		t.Fatalf("append: the tool counted %d events, the log holds %d", rep.Events, n)
	}
	before := rep.Events

	rep = benchJSON(t, "batch", "--url", env.URL, "--duration", "300ms", "--producers", "2", "--size", "25", "--baseline=false")
	if rep.Events != 25*rep.Requests || rep.BatchSize != 25 || rep.Baseline != nil || rep.HeapMaxMB <= 0 {
		t.Fatalf("batch: %+v", rep)
	}
	if n := logCount(t, env.URL, ""); n != before+rep.Events {
		t.Fatalf("batch: the tool counted %d events, the log grew by %d", rep.Events, n-before)
	}

	// Every subscriber receives every acknowledged event.
	rep = benchJSON(t, "fanout", "--url", env.URL, "--duration", "500ms", "--producers", "2", "--subscribers", "3", "--baseline=false")
	if got := int64(rep.DeliveredPerSubMin*rep.Seconds + 0.5); got != rep.Events || rep.Subscribers != 3 || rep.LagP99 <= 0 {
		t.Fatalf("fanout: slowest subscriber got %d of %d events: %+v", got, rep.Events, rep)
	}
	// The subscribers ran in a process of their own (this test binary,
	// standing in for audit-stream through TestMain), and the producers'
	// rate without them was measured first.
	if !rep.SubscriberProcess || rep.SubscriberCPUSeconds <= 0 || rep.AloneEventsPerSec <= 0 ||
		rep.ProducerRatio != rep.EventsPerSec/rep.AloneEventsPerSec || rep.LagP50 > rep.LagP99 ||
		rep.HeapMaxMB <= 0 || rep.ServerCPUSeconds <= 0 {
		t.Fatalf("fanout: %+v", rep)
	}

	rep = benchJSON(t, "query", "--url", env.URL, "--duration", "300ms", "--producers", "2", "--fill", "3000")
	if n := logCount(t, env.URL, ""); n < 3000 {
		t.Fatalf("--fill 3000 left %d events", n)
	}
	if rep.Events == 0 || rep.Events > 100*rep.Requests || rep.Baseline == nil {
		t.Fatalf("query: %+v", rep)
	}
	n := logCount(t, env.URL, "")
	rep = benchJSON(t, "verify", "--url", env.URL, "--duration", "300ms", "--producers", "1", "--fill", "3000", "--baseline=false")
	if rep.Events != n*rep.Requests {
		t.Fatalf("verify: %d events checked in %d requests of a %d-event log", rep.Events, rep.Requests, n)
	}
	rep = benchJSON(t, "proof", "--url", env.URL, "--duration", "300ms", "--producers", "2", "--fill", "3000", "--baseline=false")
	if logCount(t, env.URL, "") != n {
		t.Fatal("a read workload appended")
	}
}

// With no --url the tool starts its own server; the table names both
// targets and the ratio.
func TestBenchOwnServerAndToken(t *testing.T) {
	t.Parallel()
	code, out, errs := runCmd(t, "", "bench", "append", "--duration", "300ms", "--producers", "2", "--quiet")
	if code != 0 || !strings.Contains(out, "audit-stream") || !strings.Contains(out, "baseline") || !strings.Contains(out, "ratio to the bare handler") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}

	const secret = "bench-secret-0123456789"
	f, err := auth.ParseFile([]byte(`{"tokens":[{"id":"bench","roles":["producer","reader"],"token":"` + secret + `",
		"sources":["service-0","service-1","service-2","service-3","service-4","service-5","service-6","service-7","service-8","service-9"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	env := apitest.Start(t, apitest.Options{API: httpapi.Options{Auth: httpapi.AuthOptions{File: f}}})
	rep := benchJSON(t, "append", "--url", env.URL, "--token", secret, "--duration", "200ms", "--producers", "1", "--baseline=false")
	if n := logCount(t, env.URL, secret); n != rep.Events {
		t.Fatalf("with a token: counted %d, log holds %d", rep.Events, n)
	}
	// A refused token fails the run with the server's answer, exit 1.
	code, _, errs = runCmd(t, "", "bench", "append", "--url", env.URL, "--token", "wrong", "--duration", "200ms", "--producers", "1", "--baseline=false", "--quiet")
	if code != 1 || !strings.Contains(errs, "status 401") {
		t.Fatalf("wrong token: exit %d: %s", code, errs)
	}
}

func TestBenchRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{nil, "name a workload first"},
		{[]string{"--producers", "2"}, "name a workload first"},
		{[]string{"sleep"}, `unknown workload "sleep"`},
		{[]string{"soak", "--duration", "5s"}, "--duration must be between 10s and 24h0m0s for soak, got 5s"},
		{[]string{"soak", "--rate", "0"}, "--rate must be between 1 and 100000, got 0"},
		{[]string{"soak", "--producers", "0"}, "--producers must be between 1 and 10000, got 0"},
		{[]string{"soak", "--subscribers", "0"}, "--subscribers must be between 1 and 20000, got 0"},
		{[]string{"soak", "--interval", "-1s"}, "--interval must not be negative"},
		{[]string{"soak", "--url", "http://example.com"}, "only drives loopback servers"},
		{[]string{"soak", "extra"}, `unexpected argument "extra"`},
		{[]string{"append", "--producers", "0"}, "--producers must be between 1 and 10000, got 0"},
		{[]string{"append", "--producers", "10001"}, "--producers must be between 1 and 10000"},
		{[]string{"append", "--duration", "0s"}, "--duration must be positive"},
		{[]string{"append", "--duration", "-1s"}, "--duration must be positive"},
		{[]string{"append", "--duration", "25h"}, "at most 24h0m0s"},
		{[]string{"batch", "--size", "0"}, "--size must be between 1 and 10000, got 0"},
		{[]string{"batch", "--size", "10001"}, "--size must be between 1 and 10000"},
		{[]string{"fanout", "--subscribers", "-1"}, "--subscribers must be between 0 and 20000"},
		{[]string{"fanout", "--rate", "-1"}, "--rate must be between 0 and 100000, got -1"},
		{[]string{"verify", "--fill", "-5"}, "--fill must be between 0"},
		{[]string{"append", "--url", "http://192.0.2.1:8093"}, "only drives loopback servers"},
		{[]string{"append", "--url", "http://example.com"}, "only drives loopback servers"},
		{[]string{"append", "--url", "ftp://127.0.0.1/"}, "want http(s)://host:port"},
		{[]string{"append", "--url", "127.0.0.1:8093"}, "want http(s)://host:port"},
		{[]string{"append", "--producers", "many"}, `invalid value "many" for flag -producers`},
		{[]string{"append", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"append", "extra"}, `unexpected argument "extra"`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errs := runCmd(t, "", append([]string{"bench"}, tc.args...)...)
			if code != 2 || out != "" || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, errs, tc.stderr)
			}
		})
	}
	code, out, _ := runCmd(t, "", "bench", "--help")
	if code != 0 || !strings.Contains(out, "fanout") || !strings.Contains(out, "-subscribers") {
		t.Fatalf("--help: exit %d %q", code, out)
	}
}
