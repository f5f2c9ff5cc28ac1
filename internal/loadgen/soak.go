package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// soakSource marks the soak's events.
const soakSource = "loadgen-soak"

// SoakOptions configures a soak run.
type SoakOptions struct {
	URL, Token string
	Duration   time.Duration
	// Rate is the events per second all producers together append,
	// paced, not as fast as they can.
	Rate      int
	Producers int
	// Subscribers is how many /stream subscribers are connected at a
	// time while they come and go.
	Subscribers int
	// Interval is the sampling period; 0 picks Duration/120, between
	// 500 ms and 10 s.
	Interval time.Duration
	Progress io.Writer
}

// Limits of the soak's options.
const (
	MaxSoakRate = 100_000
	// MinSoakDuration leaves room for the warm-up, the churn and the drain.
	MinSoakDuration = 10 * time.Second
)

// Check validates the options; its errors name the flag.
func (o SoakOptions) Check() error {
	switch {
	case o.Duration < MinSoakDuration || o.Duration > MaxDuration:
		return fmt.Errorf("--duration must be between %v and %v for soak, got %v", MinSoakDuration, MaxDuration, o.Duration)
	case o.Rate < 1 || o.Rate > MaxSoakRate:
		return fmt.Errorf("--rate must be between 1 and %d, got %d", MaxSoakRate, o.Rate)
	case o.Producers < 1 || o.Producers > MaxProducers:
		return fmt.Errorf("--producers must be between 1 and %d, got %d", MaxProducers, o.Producers)
	case o.Subscribers < 1 || o.Subscribers > MaxSubscribers:
		return fmt.Errorf("--subscribers must be between 1 and %d, got %d", MaxSubscribers, o.Subscribers)
	case o.Interval < 0:
		return fmt.Errorf("--interval must not be negative, got %v", o.Interval)
	}
	return CheckLoopback(o.URL)
}

// SoakSample is one point of the soak's time series.
type SoakSample struct {
	Seconds float64 `json:"t_s"`
	// The server's, from its /metrics.
	RSSMiB     float64 `json:"rss_mib"`
	HeapMiB    float64 `json:"heap_mib"`
	Goroutines float64 `json:"goroutines"`
	FDs        float64 `json:"open_fds"`
	Streams    float64 `json:"streams_open"`
	// The tool's subscribers connected at the time.
	Subscribers int64 `json:"subscribers"`
	// Over the interval that ended at this sample: append latency, and
	// the lag from a producer sending an event to a live subscriber
	// receiving it (0 when there was none).
	AppendP50 float64 `json:"append_p50_ms"`
	AppendP99 float64 `json:"append_p99_ms"`
	StreamP50 float64 `json:"stream_p50_ms"`
	StreamP99 float64 `json:"stream_p99_ms"`
	// Since the start.
	Appended  int64 `json:"appended"`
	Delivered int64 `json:"delivered"`
}

// SoakReport is what a soak run measured and its verdict.
type SoakReport struct {
	Duration    float64 `json:"duration_s"`
	Rate        int     `json:"rate"`
	Producers   int     `json:"producers"`
	Subscribers int     `json:"subscribers"`
	// When the subscribers started coming and going, and when they all
	// left (the drain: producers only, until the end).
	ChurnStart float64 `json:"churn_start_s"`
	DrainStart float64 `json:"drain_start_s"`
	// Before is the server with the producers running and no subscriber;
	// After is the server at the end of the drain.
	Before  SoakSample   `json:"before"`
	After   SoakSample   `json:"after"`
	Samples []SoakSample `json:"samples"`
	// Subscriber connections made, of which resumed with Last-Event-ID,
	// and replays from far behind the head read slowly.
	Connections int64 `json:"connections"`
	Resumes     int64 `json:"resumes"`
	SlowReplays int64 `json:"slow_replays"`
	Appended    int64 `json:"appended"`
	Delivered   int64 `json:"delivered"`
	AppendErrs  int64 `json:"append_errors"`
	// Rule is the leak rule the run was judged by; Failures what broke it
	// (or broke a stream guarantee). No failure: the run passed.
	Rule     string   `json:"rule"`
	Failures []string `json:"failures"`
}

// The leak rule. Goroutines and file descriptors must come back once the
// subscribers have left: each stream holds a few of each, and one that does
// not return them grows without bound under churn. RSS may grow while the
// heap warms up, so the plateau after warm-up is compared with the end.
const (
	goroutineSlack = 20
	fdSlack        = 10
	rssGrowth      = 1.25
	rssSlackMiB    = 32
	// settle bounds the wait, after the last subscriber left, for the
	// server to notice every closed stream.
	settle = 15 * time.Second
)

// SoakRule states the leak rule in words, as reports print it.
var SoakRule = fmt.Sprintf("after every subscriber has left, the server's goroutines must be within %d and its open file descriptors within %d of what they were before the first subscriber (producers running in both), and no stream may stay open; the median RSS over the last quarter of the churn must be at most %.2f× the median over its second quarter + %d MiB; no append may fail, and every subscriber must see consecutive ids, with no gap or repeat, across resumes",
	goroutineSlack, fdSlack, rssGrowth, rssSlackMiB)

// judge applies the leak rule to a finished run.
func judge(r *SoakReport) []string {
	var fail []string
	if d := r.After.Goroutines - r.Before.Goroutines; d > goroutineSlack {
		fail = append(fail, fmt.Sprintf("goroutines did not come back: %.0f before the subscribers, %.0f after they left (+%.0f > %d)",
			r.Before.Goroutines, r.After.Goroutines, d, goroutineSlack))
	}
	if d := r.After.FDs - r.Before.FDs; d > fdSlack {
		fail = append(fail, fmt.Sprintf("open file descriptors did not come back: %.0f before the subscribers, %.0f after they left (+%.0f > %d)",
			r.Before.FDs, r.After.FDs, d, fdSlack))
	}
	if r.After.Streams > 0 {
		fail = append(fail, fmt.Sprintf("%.0f streams still open after every subscriber left", r.After.Streams))
	}
	var churn []SoakSample
	for _, s := range r.Samples {
		if s.Seconds >= r.ChurnStart && s.Seconds <= r.DrainStart {
			churn = append(churn, s)
		}
	}
	if q := len(churn) / 4; q >= 1 {
		warm := medianRSS(churn[q : 2*q])
		late := medianRSS(churn[len(churn)-q:])
		if limit := warm*rssGrowth + rssSlackMiB; late > limit {
			fail = append(fail, fmt.Sprintf("RSS grew: median %.1f MiB late in the churn, %.1f MiB early (limit %.1f MiB)", late, warm, limit))
		}
	}
	if r.AppendErrs > 0 {
		fail = append(fail, fmt.Sprintf("%d appends failed", r.AppendErrs))
	}
	return fail
}

func medianRSS(s []SoakSample) float64 {
	v := make([]float64, len(s))
	for i := range s {
		v[i] = s[i].RSSMiB
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// soakStats is what producers and subscribers record between samples.
type soakStats struct {
	mu              sync.Mutex
	appendLat, lag  histogram
	appended, deliv atomic.Int64
	appendErrs      atomic.Int64
	connected       atomic.Int64
	conns, resumes  atomic.Int64
	replays         atomic.Int64
	failMu          sync.Mutex
	failures        []string
}

func (s *soakStats) fail(msg string) {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if len(s.failures) < 20 {
		s.failures = append(s.failures, msg)
	}
}

// Soak appends at a steady rate while subscribers connect and leave, and
// samples the server's memory, goroutines, file descriptors and latencies.
// The run has three parts: producers alone (the "before" sample), the
// churn, and a drain in which every subscriber has left.
func Soak(ctx context.Context, opt SoakOptions) (SoakReport, error) {
	if err := opt.Check(); err != nil {
		return SoakReport{}, err
	}
	if opt.Interval == 0 {
		opt.Interval = min(10*time.Second, max(500*time.Millisecond, opt.Duration/120))
	}
	t := newTarget(opt.URL, opt.Token, opt.Producers+4)
	defer t.hc.CloseIdleConnections()
	sc := streamClient()
	defer sc.CloseIdleConnections()
	if _, err := scrape(ctx, t, rssSeries); err != nil {
		return SoakReport{}, fmt.Errorf("soak: GET /metrics: %w", err)
	}

	warm := max(2*time.Second, opt.Duration/20)
	drain := max(3*time.Second, opt.Duration/10)
	start := time.Now()
	rep := SoakReport{
		Duration: opt.Duration.Seconds(), Rate: opt.Rate, Producers: opt.Producers, Subscribers: opt.Subscribers,
		ChurnStart: warm.Seconds(), DrainStart: (opt.Duration - drain).Seconds(), Rule: SoakRule,
	}
	st := &soakStats{}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup

	// Producers, each paced to its share of the rate.
	period := time.Duration(float64(time.Second) * float64(opt.Producers) / float64(opt.Rate))
	for w := range opt.Producers {
		wg.Go(func() {
			next := time.Now().Add(time.Duration(rand.Int64N(int64(period) + 1)))
			for i := 0; ; i++ {
				select {
				case <-runCtx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				next = next.Add(period)
				body := fmt.Appendf(nil, `{"kind":"other","source":%q,"payload":{"at":"%d","i":%d,"producer":%d}}`,
					soakSource, time.Now().UnixNano(), i, w)
				t0 := time.Now()
				_, err := do(t.hc, t.request(runCtx, http.MethodPost, "/events", body), http.StatusCreated)
				if err != nil {
					if runCtx.Err() == nil {
						st.appendErrs.Add(1)
						st.fail("append: " + err.Error())
					}
					continue
				}
				st.mu.Lock()
				st.appendLat.record(time.Since(t0))
				st.mu.Unlock()
				st.appended.Add(1)
			}
		})
	}

	sample := func() SoakSample {
		m, _ := scrape(ctx, t, rssSeries, heapSeries, goroutineSeries, fdSeries, streamsSeries)
		st.mu.Lock()
		al, lag := st.appendLat, st.lag
		st.appendLat, st.lag = histogram{}, histogram{}
		st.mu.Unlock()
		return SoakSample{
			Seconds: time.Since(start).Seconds(),
			RSSMiB:  m[rssSeries] / (1 << 20), HeapMiB: m[heapSeries] / (1 << 20),
			Goroutines: m[goroutineSeries], FDs: m[fdSeries], Streams: m[streamsSeries],
			Subscribers: st.connected.Load(),
			AppendP50:   ms(al.quantile(0.5)), AppendP99: ms(al.quantile(0.99)),
			StreamP50: ms(lag.quantile(0.5)), StreamP99: ms(lag.quantile(0.99)),
			Appended: st.appended.Load(), Delivered: st.deliv.Load(),
		}
	}
	var samplesMu sync.Mutex
	record := func(s SoakSample) {
		samplesMu.Lock()
		rep.Samples = append(rep.Samples, s)
		samplesMu.Unlock()
		if opt.Progress != nil {
			fmt.Fprintf(opt.Progress, "\r\033[Ksoak %.0f/%.0fs  rss %.1f MiB  goroutines %.0f  fds %.0f  streams %.0f  append p99 %.1f ms  stream p99 %.1f ms",
				s.Seconds, opt.Duration.Seconds(), s.RSSMiB, s.Goroutines, s.FDs, s.Streams, s.AppendP99, s.StreamP99)
		}
	}
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(opt.Interval)
		defer tick.Stop()
		for {
			select {
			case <-runCtx.Done():
				return
			case <-tick.C:
				record(sample())
			}
		}
	}()

	sleep := func(d time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return true
		}
	}
	if !sleep(warm) {
		return rep, ctx.Err()
	}
	rep.Before = sample()

	// The churn: keep opt.Subscribers connected, each for a random
	// lifetime, in four kinds that take turns.
	life := min(30*time.Second, max(time.Second, opt.Duration/20))
	churnCtx, endChurn := context.WithCancel(runCtx)
	var subs sync.WaitGroup
	launch := func(n int) {
		st.connected.Add(1) // before the goroutine runs: the loop below counts it
		subs.Go(func() {
			defer st.connected.Add(-1)
			d := life/2 + time.Duration(rand.Int64N(int64(life)))
			soakSubscriber(churnCtx, sc, t, st, n%4, d)
		})
	}
	churnEnd := time.Now().Add(opt.Duration - warm - drain)
	n := 0
	for time.Now().Before(churnEnd) && ctx.Err() == nil {
		for st.connected.Load() < int64(opt.Subscribers) {
			launch(n)
			n++
		}
		sleep(50 * time.Millisecond)
	}
	endChurn()
	subs.Wait()

	// The drain: producers only. The server must return what the
	// subscribers held.
	sleep(time.Until(start.Add(opt.Duration)))
	deadline := time.Now().Add(settle)
	for {
		rep.After = sample()
		if rep.After.Streams == 0 && rep.After.Goroutines-rep.Before.Goroutines <= goroutineSlack &&
			rep.After.FDs-rep.Before.FDs <= fdSlack || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		sleep(250 * time.Millisecond)
	}
	stop()
	wg.Wait()
	<-samplerDone
	record(rep.After)
	if opt.Progress != nil {
		fmt.Fprint(opt.Progress, "\r\033[K")
	}
	rep.Connections, rep.Resumes, rep.SlowReplays = st.conns.Load(), st.resumes.Load(), st.replays.Load()
	rep.Appended, rep.Delivered, rep.AppendErrs = st.appended.Load(), st.deliv.Load(), st.appendErrs.Load()
	rep.Failures = append(judge(&rep), st.failures...)
	if rep.Failures == nil {
		rep.Failures = []string{}
	}
	return rep, ctx.Err()
}

// Kinds of soak subscriber.
const (
	soakLive   = iota // follows the head until it leaves
	soakResume        // drops its connection halfway and resumes with Last-Event-ID
	soakReplay        // starts far behind the head and reads slowly: storage, then the ring
	soakBrief         // leaves after a moment, often before its first event
)

// soakSubscriber runs one subscriber of the given kind for about d. Every
// subscriber reads the whole log unfiltered, so the ids it receives must be
// consecutive: a gap is a lost event, a repeat a duplicate.
func soakSubscriber(ctx context.Context, sc *http.Client, t *target, st *soakStats, kind int, d time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var last int64 = -1 // the id of the last frame, the position first
	connect := time.Now()
	var slow time.Duration
	path := "/stream"
	switch kind {
	case soakBrief:
		var c context.CancelFunc
		ctx, c = context.WithTimeout(ctx, time.Duration(rand.Int64N(int64(300*time.Millisecond))))
		defer c()
	case soakReplay:
		c, err := t.client()
		if err == nil {
			if s, err := c.Stats(ctx); err == nil {
				path += "?after=" + strconv.FormatInt(max(0, s.LastEventID-30000), 10)
				slow = 100 * time.Millisecond
				st.replays.Add(1)
			}
		}
	}
	onFrame := func(f frame) error {
		if last >= 0 && f.data != nil && f.id != last+1 {
			return fmt.Errorf("event %d after %d: an event lost or repeated", f.id, last)
		}
		if last >= 0 && f.data == nil && f.id != last {
			return fmt.Errorf("resumed at %d, but the last event received was %d", f.id, last)
		}
		last = f.id
		if f.data != nil {
			st.deliv.Add(1)
			// Live subscribers' lag only: a slow reader's is its own.
			if sent, ok := sentAt(f.data); ok && slow == 0 && sent >= connect.UnixNano() {
				st.mu.Lock()
				st.lag.record(f.at.Sub(time.Unix(0, sent)))
				st.mu.Unlock()
			}
		}
		return nil
	}
	run := func(ctx context.Context, lastEventID string) {
		st.conns.Add(1)
		err := followSlowly(ctx, sc, t, path, lastEventID, slow, onFrame)
		if ctx.Err() == nil && err != nil {
			st.fail("stream: " + err.Error())
		}
	}
	if kind == soakResume {
		half, c := context.WithTimeout(ctx, d/2)
		run(half, "")
		c()
		if ctx.Err() != nil || last < 0 {
			return
		}
		st.resumes.Add(1)
		run(ctx, strconv.FormatInt(last, 10))
		return
	}
	run(ctx, "")
}

// followSlowly is follow with a pause before every read (none when pause
// is 0), as a subscriber on a slow link or busy with each event would read.
func followSlowly(ctx context.Context, sc *http.Client, t *target, path, lastEventID string, pause time.Duration, fn func(frame) error) error {
	req := t.request(ctx, http.MethodGet, path, nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := sc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return &statusError{resp.StatusCode, string(body)}
	}
	var body io.Reader = resp.Body
	if pause > 0 {
		body = &pausedReader{ctx: ctx, r: resp.Body, pause: pause, max: 16 << 10}
	}
	return splitFrames(body, fn)
}

// pausedReader waits pause before each read of at most max bytes.
type pausedReader struct {
	ctx   context.Context
	r     io.Reader
	pause time.Duration
	max   int
}

func (p *pausedReader) Read(b []byte) (int, error) {
	select {
	case <-p.ctx.Done():
		return 0, p.ctx.Err()
	case <-time.After(p.pause):
	}
	return p.r.Read(b[:min(len(b), p.max)])
}

// WriteJSON writes the report as one JSON object.
func (r *SoakReport) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteSummary writes the verdict and the before/after figures for people.
func (r *SoakReport) WriteSummary(w io.Writer) error {
	fmt.Fprintf(w, "soak: %.0f s, %d events/s from %d producers, %d subscribers at a time: %d connections (%d resumed, %d slow replays), %d events appended, %d delivered\n",
		r.Duration, r.Rate, r.Producers, r.Subscribers, r.Connections, r.Resumes, r.SlowReplays, r.Appended, r.Delivered)
	fmt.Fprintf(w, "server before the subscribers / after they left: goroutines %.0f / %.0f, open fds %.0f / %.0f, rss %.1f / %.1f MiB, heap %.1f / %.1f MiB\n",
		r.Before.Goroutines, r.After.Goroutines, r.Before.FDs, r.After.FDs, r.Before.RSSMiB, r.After.RSSMiB, r.Before.HeapMiB, r.After.HeapMiB)
	var peak SoakSample
	for _, s := range r.Samples {
		peak.RSSMiB = max(peak.RSSMiB, s.RSSMiB)
		peak.Goroutines = max(peak.Goroutines, s.Goroutines)
		peak.FDs = max(peak.FDs, s.FDs)
		peak.AppendP99 = max(peak.AppendP99, s.AppendP99)
		peak.StreamP99 = max(peak.StreamP99, s.StreamP99)
	}
	fmt.Fprintf(w, "peaks: rss %.1f MiB, goroutines %.0f, open fds %.0f; worst interval: append p99 %.1f ms, stream lag p99 %.1f ms\n",
		peak.RSSMiB, peak.Goroutines, peak.FDs, peak.AppendP99, peak.StreamP99)
	if len(r.Failures) == 0 {
		_, err := fmt.Fprintln(w, "no leak trend: pass")
		return err
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "FAIL: %s\n", f)
	}
	_, err := fmt.Fprintf(w, "rule: %s\n", r.Rule)
	return err
}

// SVG plots the run: the server's memory, its goroutines and file
// descriptors with the streams open, and the latencies, over time.
func (r *SoakReport) SVG() []byte {
	line := func(name, color string, f func(SoakSample) float64) series {
		s := series{name: name, color: color}
		for _, p := range r.Samples {
			s.points = append(s.points, [2]float64{p.Seconds, f(p)})
		}
		return s
	}
	c := chart{
		title: "audit-stream bench soak",
		subtitle: fmt.Sprintf("%.0f s · %d events/s · %d subscribers at a time · %d connections (%d resumed, %d slow replays)",
			r.Duration, r.Rate, r.Subscribers, r.Connections, r.Resumes, r.SlowReplays),
		xLabel: "seconds since the start",
		marks:  []mark{{r.ChurnStart, "subscribers come and go"}, {r.DrainStart, "all left"}},
		panels: []panel{
			{title: "server memory", unit: "MiB", series: []series{
				line("RSS", "#1f77b4", func(s SoakSample) float64 { return s.RSSMiB }),
				line("Go heap", "#ff7f0e", func(s SoakSample) float64 { return s.HeapMiB }),
			}},
			{title: "server goroutines, open file descriptors, streams", unit: "count", series: []series{
				line("goroutines", "#2ca02c", func(s SoakSample) float64 { return s.Goroutines }),
				line("open fds", "#d62728", func(s SoakSample) float64 { return s.FDs }),
				line("streams open", "#9467bd", func(s SoakSample) float64 { return s.Streams }),
			}},
			{title: "latency per sampling interval", unit: "ms", series: []series{
				line("append p50", "#8c564b", func(s SoakSample) float64 { return s.AppendP50 }),
				line("append p99", "#e377c2", func(s SoakSample) float64 { return s.AppendP99 }),
				line("stream lag p50", "#7f7f7f", func(s SoakSample) float64 { return s.StreamP50 }),
				line("stream lag p99", "#17becf", func(s SoakSample) float64 { return s.StreamP99 }),
			}},
		},
	}
	return c.svg()
}
