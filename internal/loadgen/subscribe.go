package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/audit-stream/audit-stream/internal/cputime"
)

// The fan-out's subscribers run in a process of their own, as real
// subscribers do: in the load generator's process they would share its
// scheduler and heap with the producers (and, with no --url, with the
// server itself). The parent starts it with Options.Exec and talks to it
// over its standard input and output, one line each way:
//
//	child:  ready            every stream is open and has sent its position
//	parent: until <n>        the producers stopped after <n> events
//	child:  {SubscriberReport as JSON}, then it exits
//
// The child gives each subscriber up to catchUp to receive n events.

// SubscribeOptions configures the subscriber process.
type SubscribeOptions struct {
	URL, Token  string
	Subscribers int
	// After is where the streams resume from (the head before the run).
	After int64
}

// SubscriberReport is what the subscriber process measured.
type SubscriberReport struct {
	Subscribers int `json:"subscribers"`
	// Received events per subscriber: the fewest, the total.
	GotMin   int64 `json:"got_min"`
	GotTotal int64 `json:"got_total"`
	// Lag is from the producer sending an event to a subscriber's read
	// returning it, over every event every subscriber received.
	Lag Latency `json:"lag"`
	// CPUSeconds is the CPU time the subscriber process used.
	CPUSeconds float64 `json:"cpu_seconds"`
	// FirstError is the first stream that failed or saw an id out of
	// order, if any.
	FirstError string `json:"first_error,omitempty"`
}

// catchUp bounds how long subscribers get, once the producers stop, to
// receive every acknowledged event: what is missing then is not delivered.
const catchUp = 5 * time.Second

// RunSubscribers is the subscriber process: it follows /stream from
// opt.After with opt.Subscribers connections, filtered to the fan-out's
// source, and speaks the protocol above on in and out.
func RunSubscribers(ctx context.Context, opt SubscribeOptions, in io.Reader, out io.Writer) error {
	if opt.Subscribers < 1 || opt.Subscribers > MaxSubscribers {
		return fmt.Errorf("--subscribers must be between 1 and %d, got %d", MaxSubscribers, opt.Subscribers)
	}
	if err := CheckLoopback(opt.URL); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := newTarget(opt.URL, opt.Token, 1)
	sc := streamClient()
	defer sc.CloseIdleConnections()
	type sub struct {
		got  atomic.Int64
		lag  histogram
		err  error
		done chan struct{}
	}
	subs := make([]*sub, opt.Subscribers)
	var ready sync.WaitGroup
	path := "/stream?source=" + fanoutSource + "&after=" + strconv.FormatInt(opt.After, 10)
	for i := range subs {
		s := &sub{done: make(chan struct{})}
		subs[i] = s
		ready.Add(1)
		go func() {
			defer close(s.done)
			first := true
			last := opt.After
			err := follow(ctx, sc, t, path, "", func(f frame) error {
				if first {
					first = false
					ready.Done()
					return nil
				}
				if f.id <= last {
					return fmt.Errorf("event %d after event %d: out of order or repeated", f.id, last)
				}
				last = f.id
				if sent, ok := sentAt(f.data); ok {
					s.lag.record(f.at.Sub(time.Unix(0, sent)))
				}
				s.got.Add(1)
				return nil
			})
			if first {
				ready.Done()
			}
			if ctx.Err() == nil {
				s.err = err
			}
		}()
	}
	ready.Wait()
	var firstErr error
	for _, s := range subs {
		select {
		case <-s.done:
			if firstErr == nil {
				firstErr = s.err
			}
		default:
		}
	}
	if firstErr != nil {
		return fmt.Errorf("subscribe: %w", firstErr)
	}
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return err
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil {
		return fmt.Errorf("subscribe: waiting for the producers: %w", err)
	}
	want, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(line), "until "), 10, 64)
	if err != nil || !strings.HasPrefix(line, "until ") {
		return fmt.Errorf("subscribe: want \"until <n>\", got %q", line)
	}
	deadline := time.Now().Add(catchUp)
	for _, s := range subs {
		for s.got.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	cancel()
	rep := SubscriberReport{Subscribers: len(subs), GotMin: -1}
	var lag histogram
	for _, s := range subs {
		<-s.done
		lag.merge(&s.lag)
		got := s.got.Load()
		rep.GotTotal += got
		if rep.GotMin < 0 || got < rep.GotMin {
			rep.GotMin = got
		}
		if s.err != nil && rep.FirstError == "" {
			rep.FirstError = s.err.Error()
		}
	}
	rep.Lag = lag.summary()
	rep.CPUSeconds = cputime.Used().Seconds()
	return json.NewEncoder(out).Encode(rep)
}

// subscriberProcess is the parent's end of a subscriber process.
type subscriberProcess struct {
	in   io.WriteCloser
	out  *bufio.Reader
	wait func() error
}

// startSubscribers starts the subscriber process (opt.Exec, or in this
// process without it) and waits until every stream is open.
func startSubscribers(ctx context.Context, opt Options, after int64) (*subscriberProcess, error) {
	sopt := SubscribeOptions{URL: opt.URL, Token: opt.Token, Subscribers: opt.Subscribers, After: after}
	var p subscriberProcess
	if len(opt.Exec) == 0 {
		inR, inW := io.Pipe()
		outR, outW := io.Pipe()
		done := make(chan error, 1)
		go func() {
			err := RunSubscribers(ctx, sopt, inR, outW)
			outW.CloseWithError(err)
			done <- err
		}()
		p = subscriberProcess{in: inW, out: bufio.NewReader(outR), wait: func() error { return <-done }}
	} else {
		args := append(opt.Exec[1:len(opt.Exec):len(opt.Exec)], "bench", "subscribe",
			"--url", opt.URL, "--subscribers", strconv.Itoa(opt.Subscribers), "--after", strconv.FormatInt(after, 10))
		if opt.SubscriberProfile != "" {
			args = append(args, "--cpuprofile", opt.SubscriberProfile)
		}
		cmd := exec.CommandContext(ctx, opt.Exec[0], args...)
		cmd.Env = append(os.Environ(), ChildEnv+"=1", "AUDIT_STREAM_TOKEN="+opt.Token)
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting the subscriber process: %w", err)
		}
		p = subscriberProcess{in: in, out: bufio.NewReader(out), wait: cmd.Wait}
	}
	line, err := p.out.ReadString('\n')
	if line != "ready\n" {
		p.in.Close()
		werr := p.wait()
		return nil, fmt.Errorf("the subscriber process did not start: %q %v", line, errors.Join(err, werr))
	}
	return &p, nil
}

// finish tells the subscribers how many events were acknowledged and
// collects their report.
func (p *subscriberProcess) finish(events int64) (SubscriberReport, error) {
	var rep SubscriberReport
	_, err := fmt.Fprintf(p.in, "until %d\n", events)
	if err == nil {
		err = json.NewDecoder(p.out).Decode(&rep)
	}
	p.in.Close()
	if werr := p.wait(); err == nil && werr != nil {
		err = fmt.Errorf("the subscriber process: %w", werr)
	}
	return rep, err
}

// ChildEnv is set in the environment of the processes the load tool starts
// from its own binary (Options.Exec), so that a test binary standing in for
// the real one knows to act as it.
const ChildEnv = "AUDIT_STREAM_BENCH_CHILD"
