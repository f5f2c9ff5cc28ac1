package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the Prometheus series of one Server. Counts that other parts
// already keep (the ledger's commits, the auth denials, open streams) are
// read when scraped rather than mirrored, so they cannot drift.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audit_stream_http_requests_total",
		Help: "HTTP requests by route pattern and status code.",
	}, []string{"route", "code"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "audit_stream_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern (streams excluded).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"route"})
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.latency,
		gauge("audit_stream_head_event_id", "Id of the last committed event.",
			func() float64 { return float64(s.led.Head().ID) }),
		counter("audit_stream_commits_total", "Transactions committed by the sequencer (one fsync each).",
			func() float64 { n, _ := s.led.Commits(); return float64(n) }),
		counter("audit_stream_committed_events_total", "Events committed by the sequencer.",
			func() float64 { _, n := s.led.Commits(); return float64(n) }),
		gauge("audit_stream_streams_open", "Open /stream subscribers.",
			func() float64 { return float64(len(s.sema)) }),
		counter("audit_stream_auth_malformed_total", "Requests refused with 400 for an ambiguous credential (several Authorization headers).",
			func() float64 { return float64(s.auth.malformed.Load()) }),
		counter("audit_stream_auth_denied_total", "Requests refused with 401 (no or bad credential).",
			func() float64 { n, _, _ := s.authCounts(); return float64(n) }),
		counter("audit_stream_auth_forbidden_total", "Requests refused with 403 (role or source not allowed).",
			func() float64 { _, n, _ := s.authCounts(); return float64(n) }),
		counter("audit_stream_rate_limited_total", "Requests refused with 429 by a token's rate limit.",
			func() float64 { _, _, n := s.authCounts(); return float64(n) }),
		counter("audit_stream_timestamp_skewed_total", "Events whose producer timestamp was further from the receive time than --timestamp-skew (flagged in their provenance).",
			func() float64 { return float64(s.skewed.Load()) }),
		counter("audit_stream_signed_replays_total", "Signed requests refused with 409 because the log already holds their producer signatures.",
			func() float64 { return float64(s.replays.Load()) }),
	)
	if s.opt.Checkpoints != nil {
		m.reg.MustRegister(gauge("audit_stream_checkpoint_tree_size", "Tree size of the latest signed checkpoint.",
			func() float64 { return float64(s.opt.Checkpoints.Latest().Size) }))
	}
	m.reg.MustRegister(s.opt.Metrics...)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// instrument counts every request by the route pattern that served it (never
// the raw path, which would make a series per event id).
func (m *metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "other"
		}
		m.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		if route != "GET /stream" {
			m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

// statusWriter remembers the status code; Unwrap keeps http.ResponseController
// (flushes and write deadlines on streams) working through it.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
