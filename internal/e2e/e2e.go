// Package e2e runs the real audit-stream binary as a child process, so that
// tests can do to it what operators and crashes do: SIGTERM, SIGKILL,
// restart on the same data.
package e2e

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a running server.
type Process struct {
	URL  string
	Addr string
	cmd  *exec.Cmd
	done chan struct{}
	mu   sync.Mutex
	log  strings.Builder
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// Start runs `audit-stream serve --data dir --addr 127.0.0.1:0 args...` and
// waits until it listens. addr may be "" for a free port.
func Start(t testing.TB, dir, addr string, args ...string) *Process {
	t.Helper()
	return start(t, append([]string{"--data", dir}, args...), addr)
}

// StartStore is Start with --store: a data directory, or a PostgreSQL URL
// that several processes may serve at once.
func StartStore(t testing.TB, store, addr string, args ...string) *Process {
	t.Helper()
	return start(t, append([]string{"--store", store}, args...), addr)
}

func start(t testing.TB, args []string, addr string) *Process {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	return StartCommand(t, append([]string{"serve", "--addr", addr}, args...)...)
}

// StartCommand runs `audit-stream args...`, a command that logs
// "msg=listening addr=…" once it listens (serve, witness serve), and waits
// for that line.
func StartCommand(t testing.TB, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = append(os.Environ(), "HOST=", "PORT=", "AUDIT_STREAM_DATA=", "AUDIT_STREAM_STORE=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	found := make(chan string, 1)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	// Wait closes the pipe: read the whole log first, so that what a
	// process said before exiting is never lost.
	go func() { <-read; cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Kill() })
	select {
	case a := <-found:
		p.Addr, p.URL = a, "http://"+a
	case <-p.done:
		t.Fatalf("server exited before listening:\n%s", p.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not listen within 30s:\n%s", p.Log())
	}
	return p
}

// Log is what the server wrote to stderr so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Kill sends SIGKILL and waits for the process to die.
func (p *Process) Kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Terminate sends SIGTERM and waits for a graceful exit; it returns the exit
// code.
func (p *Process) Terminate(t testing.TB) int {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not exit within 30s of SIGTERM:\n%s", p.Log())
	}
	return p.cmd.ProcessState.ExitCode()
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// ExitCode is the exit code once Done is closed: -1 if a signal killed it.
func (p *Process) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}
