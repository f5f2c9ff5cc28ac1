package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/audit-stream/audit-stream/internal/loadgen"
)

func benchUsage(w io.Writer) {
	fmt.Fprint(w, `Usage: audit-stream bench <workload> [flags]

Drive a server on this machine and measure it; with no --url, start one on a
temporary directory (the same wiring as serve, in this process). Each run also
measures the same client against a bare net/http handler that only decodes
the JSON and answers 201 (--baseline), and prints the ratio to it.

Workloads:
  append     single events from --producers clients: events/s, p50/p99/max latency
  batch      batches of --size events
  fanout     single appends while --subscribers follow /stream: delivered events/s, lag p99
  query      GET /events?limit=100 on a log filled to --fill events
  proof      GET /events/{id}/proof on a log filled to --fill events
  verify     GET /verify on a log filled to --fill events
  baseline   only the bare handler, single appends
  soak       a steady append rate for --duration (default 10m) while subscribers
             connect and leave; samples the server's RSS, goroutines, open files
             and latencies; exit 1 on a leak trend (see bench soak --help)

Examples:
  audit-stream bench append --producers 64 --duration 10s
  audit-stream bench batch --size 1000 --producers 4 --json
  audit-stream bench fanout --subscribers 1000 --producers 16
  audit-stream bench verify --fill 1000000 --producers 1
  audit-stream bench append --url http://127.0.0.1:8093 --token "$TOKEN"
  audit-stream bench soak --duration 10m --out-svg soak.svg --out-json soak.json

Flags:
`)
}

func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			benchUsage(stdout)
			benchFlags(new(benchConfig), stdout).PrintDefaults()
			return 0
		}
		fmt.Fprintln(stderr, "bench: name a workload first: append, batch, fanout, query, proof, verify, baseline or soak (see --help)")
		return 2
	}
	name := args[0]
	switch name {
	case "subscribe":
		return runBenchSubscribe(ctx, args[1:], stdin, stdout, stderr)
	case "soak":
		return runBenchSoak(ctx, args[1:], stdout, stderr)
	}
	w := loadgen.Workload(name)
	baselineOnly := name == "baseline"
	if baselineOnly {
		w = loadgen.Append
	}
	var cfg benchConfig
	fs := benchFlags(&cfg, stderr)
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if err := resolveToken(&cfg.token); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 2
	}
	opt := loadgen.Options{
		URL: cfg.url, Token: cfg.token, Producers: cfg.producers, Duration: cfg.duration,
		BatchSize: cfg.size, Subscribers: cfg.subscribers, Rate: cfg.rate, Fill: cfg.fill,
	}
	if err := opt.Check(w); err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		if !baselineOnly && strings.HasPrefix(err.Error(), "unknown workload") {
			fmt.Fprintln(stderr, "bench: workloads: append, batch, fanout, query, proof, verify, baseline, soak")
		}
		return 2
	}
	if !cfg.quiet {
		opt.Progress = stderr
	}
	if exe, err := os.Executable(); err == nil {
		opt.Exec = []string{exe}
		if cfg.cpuprofile != "" {
			opt.SubscriberProfile = cfg.cpuprofile + ".subscribers"
		}
	}
	var base *loadgen.Result
	if cfg.baseline || baselineOnly {
		b, err := loadgen.RunBaseline(ctx, w, opt)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		base = &b
	}
	var rep loadgen.Report
	if baselineOnly {
		rep = loadgen.NewReport(*base, nil)
	} else {
		if opt.URL == "" {
			url, stop, err := startBenchServer(ctx, stderr)
			if err != nil {
				fmt.Fprintf(stderr, "bench: starting a server: %v\n", err)
				return 1
			}
			defer stop()
			opt.URL = url
		}
		if cfg.cpuprofile != "" {
			stopProfile, err := startCPUProfile(cfg.cpuprofile)
			if err != nil {
				fmt.Fprintf(stderr, "bench: %v\n", err)
				return 1
			}
			defer stopProfile()
		}
		r, err := loadgen.Run(ctx, w, opt)
		if err != nil {
			fmt.Fprintf(stderr, "bench: %v\n", err)
			return 1
		}
		rep = loadgen.NewReport(r, base)
	}
	var err error
	if cfg.json {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench: %v\n", err)
		return 1
	}
	return 0
}

type benchConfig struct {
	url, token  string
	producers   int
	duration    time.Duration
	size        int
	subscribers int
	rate        int
	fill        int
	baseline    bool
	json        bool
	quiet       bool
	cpuprofile  string
}

func benchFlags(cfg *benchConfig, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&cfg.url, "url", "", "base URL of a running server on this machine (loopback only); default: start one on a temporary directory")
	registerToken(fs, &cfg.token) // a producer and reader one
	fs.IntVar(&cfg.producers, "producers", 16, "concurrent clients, each sending its next request once the last is answered")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to measure")
	fs.IntVar(&cfg.size, "size", 1000, "events per batch (batch)")
	fs.IntVar(&cfg.subscribers, "subscribers", 100, "/stream subscribers (fanout)")
	fs.IntVar(&cfg.rate, "rate", 0, "fanout: pace the producers to this many events/s together (0: as fast as answered)")
	fs.IntVar(&cfg.fill, "fill", 100000, "events the log must hold before query, proof and verify, appended in batches of 1,000")
	fs.BoolVar(&cfg.baseline, "baseline", true, "also measure the bare handler in this run and print the ratio")
	fs.BoolVar(&cfg.json, "json", false, "print the report as JSON")
	fs.BoolVar(&cfg.quiet, "quiet", false, "no progress line on stderr")
	fs.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of this process (with no --url, the server's too) to this file, and the fan-out's subscriber process's to this file + .subscribers")
	fs.Usage = func() {
		benchUsage(fs.Output())
		fs.PrintDefaults()
	}
	return fs
}

// startBenchServer runs serve in this process on a new temporary data
// directory and a free loopback port, with nothing taken from the
// environment, and returns its URL and a function that stops it and
// removes the directory.
func startBenchServer(ctx context.Context, stderr io.Writer) (string, func(), error) {
	dir, err := os.MkdirTemp("", "audit-stream-bench-")
	if err != nil {
		return "", nil, err
	}
	lw := &listenWatcher{found: make(chan string, 1), out: stderr}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan int, 1)
	go func() {
		done <- runServe(sctx, []string{
			"--addr", "127.0.0.1:0", "--data", dir, "--auth", "auto", "--tokens-file", "",
			"--signing-key", "", "--origin", "", "--checkpoint-copy", "", "--log-format", "text",
		}, nil, io.Discard, lw)
	}()
	stop := func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}
	select {
	case addr := <-lw.found:
		return "http://" + addr, stop, nil
	case code := <-done:
		cancel()
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("the server exited with status %d", code)
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("the server did not listen within 30 s")
	}
}

var listeningLine = regexp.MustCompile(`msg=listening addr=(\S+)`)

// listenWatcher is the bench server's log: it catches the address the
// server listens on and passes on errors only, so that the report is not
// lost among the server's lines.
type listenWatcher struct {
	mu    sync.Mutex
	buf   []byte
	found chan string
	out   io.Writer
}

func (l *listenWatcher) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := l.buf[:i+1]
		if m := listeningLine.FindSubmatch(line); m != nil {
			select {
			case l.found <- string(m[1]):
			default:
			}
		} else if bytes.Contains(line, []byte("level=ERROR")) {
			fmt.Fprintf(l.out, "bench: server: %s", line)
		}
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

// startCPUProfile profiles this process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// runBenchSubscribe is the fan-out's subscriber process (loadgen's
// protocol on stdin and stdout); the fanout workload starts it from its
// own binary. It is not listed in the help: people run fanout.
func runBenchSubscribe(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var opt loadgen.SubscribeOptions
	fs := flag.NewFlagSet("bench subscribe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opt.URL, "url", "", "base URL of the server (loopback only)")
	registerToken(fs, &opt.Token)
	fs.IntVar(&opt.Subscribers, "subscribers", 100, "/stream subscribers")
	fs.Int64Var(&opt.After, "after", 0, "event id the streams resume after")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to this file")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *cpuprofile != "" {
		stop, err := startCPUProfile(*cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "bench subscribe: %v\n", err)
			return 1
		}
		defer stop()
	}
	if err := resolveToken(&opt.Token); err != nil {
		fmt.Fprintf(stderr, "bench subscribe: %v\n", err)
		return 2
	}
	if err := loadgen.RunSubscribers(ctx, opt, stdin, stdout); err != nil {
		fmt.Fprintf(stderr, "bench subscribe: %v\n", err)
		return 1
	}
	return 0
}

// runBenchSoak runs `bench soak`: a steady append rate while subscribers
// come and go, sampling the server; exit 1 when the run shows a leak trend.
func runBenchSoak(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opt := loadgen.SoakOptions{}
	fs := flag.NewFlagSet("bench soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&opt.URL, "url", "", "base URL of a running server on this machine (loopback only); default: start one as a child process on a temporary directory")
	registerToken(fs, &opt.Token)
	fs.DurationVar(&opt.Duration, "duration", 10*time.Minute, "how long to run")
	fs.IntVar(&opt.Rate, "rate", 200, "events per second, all producers together, paced")
	fs.IntVar(&opt.Producers, "producers", 4, "concurrent producers sharing the rate")
	fs.IntVar(&opt.Subscribers, "subscribers", 50, "/stream subscribers connected at a time while they come and go")
	fs.DurationVar(&opt.Interval, "interval", 0, "sampling period (default: duration/120, between 500ms and 10s)")
	jsonOut := fs.Bool("json", false, "print the report (every sample) as JSON instead of the summary")
	jsonFile := fs.String("out-json", "", "also write the report as JSON to this file")
	svgFile := fs.String("out-svg", "", "write the plot of the samples as SVG to this file")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := resolveToken(&opt.Token); err != nil {
		fmt.Fprintf(stderr, "bench soak: %v\n", err)
		return 2
	}
	check := opt
	if check.URL == "" {
		check.URL = "http://127.0.0.1:1" // checked once the server is up
	}
	if err := check.Check(); err != nil {
		fmt.Fprintf(stderr, "bench soak: %v\n", err)
		return 2
	}
	if !*quiet {
		opt.Progress = stderr
	}
	if opt.URL == "" {
		url, stop, err := startServerProcess(ctx, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "bench soak: starting a server: %v\n", err)
			return 1
		}
		defer stop()
		opt.URL = url
	}
	rep, err := loadgen.Soak(ctx, opt)
	if err != nil {
		fmt.Fprintf(stderr, "bench soak: %v\n", err)
		return 1
	}
	if *jsonFile != "" {
		var b bytes.Buffer
		rep.WriteJSON(&b)
		if err := os.WriteFile(*jsonFile, b.Bytes(), 0o644); err != nil {
			fmt.Fprintf(stderr, "bench soak: %v\n", err)
			return 1
		}
	}
	if *svgFile != "" {
		if err := os.WriteFile(*svgFile, rep.SVG(), 0o644); err != nil {
			fmt.Fprintf(stderr, "bench soak: %v\n", err)
			return 1
		}
	}
	if *jsonOut {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteSummary(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "bench soak: %v\n", err)
		return 1
	}
	if len(rep.Failures) > 0 {
		return 1
	}
	return 0
}

// startServerProcess runs `audit-stream serve` from this binary as a child
// process on a new temporary data directory and a free loopback port, so
// that what the soak samples (RSS, goroutines, descriptors) is the
// server's alone. It returns the URL and a function that stops the server
// (SIGTERM, as in production) and removes the directory.
func startServerProcess(ctx context.Context, stderr io.Writer) (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp("", "audit-stream-soak-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe, "serve",
		"--addr", "127.0.0.1:0", "--data", dir, "--auth", "auto", "--tokens-file", "",
		"--signing-key", "", "--origin", "", "--checkpoint-copy", "", "--log-format", "text")
	cmd.Env = append(os.Environ(), loadgen.ChildEnv+"=1")
	lw := &listenWatcher{found: make(chan string, 1), out: stderr}
	cmd.Stderr = lw
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	select {
	case addr := <-lw.found:
		return "http://" + addr, stop, nil
	case err := <-exited:
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("the server exited: %v", err)
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	case <-time.After(30 * time.Second):
		stop()
		return "", nil, errors.New("the server did not listen within 30 s")
	}
}
