package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv, when set (.ci/run sets it), makes a test that needs a private
// server fail when initdb is not installed, instead of skipping.
const RequireEnv = "AUDIT_STREAM_TEST_INITDB"

// Server is a private PostgreSQL server a test starts, stops and restarts
// at will, on a temporary directory and a free port (never the shared
// server: restarting that one would break every other test). Its processes
// and directory are removed when the test ends, however it ends.
type Server struct {
	// URL reaches the server's database "postgres" over TCP.
	URL  string
	Port int
	dir  string
	bin  string // the directory of initdb, postgres, pg_basebackup
	cred *syscall.Credential

	mu   sync.Mutex
	proc *exec.Cmd
	done chan struct{}
}

// StartServer initdbs a fresh cluster and starts it; conf lines are
// appended to its postgresql.conf.
func StartServer(t testing.TB, conf ...string) *Server {
	t.Helper()
	s := newServer(t)
	s.run(t, s.bin+"/initdb", "-D", s.dir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C")
	s.configure(t, conf)
	s.Start(t)
	return s
}

// StartReplica starts a streaming standby of s (pg_basebackup -R), which
// serves reads and replays s's WAL as it comes.
func (s *Server) StartReplica(t testing.TB, conf ...string) *Server {
	t.Helper()
	r := newServer(t)
	if err := os.Remove(r.dir); err != nil { // pg_basebackup creates it
		t.Fatal(err)
	}
	r.run(t, r.bin+"/pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", "postgres",
		"-D", r.dir, "-R", "-X", "stream", "-c", "fast", "--no-sync")
	r.configure(t, conf)
	r.Start(t)
	return r
}

func newServer(t testing.TB) *Server {
	t.Helper()
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("initdb is not installed (and %s is set): %v", RequireEnv, err)
		}
		t.Skip("initdb is not installed: skipping a test that needs a private PostgreSQL server")
	}
	if real, err := filepath.EvalSymlinks(initdb); err == nil {
		initdb = real
	}
	s := &Server{bin: filepath.Dir(initdb), Port: freePort(t)}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	if os.Geteuid() == 0 {
		// PostgreSQL refuses to run as root: run it as the postgres
		// user, or nobody.
		u, err := user.Lookup("postgres")
		if err != nil {
			u, err = user.Lookup("nobody")
		}
		if err != nil {
			t.Skip("running as root with neither a postgres nor a nobody user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	s.dir, err = os.MkdirTemp("", "audit-stream-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		s.stop(syscall.SIGQUIT) // immediate: nothing to keep
		os.RemoveAll(s.dir)
	})
	return s
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGQUIT}
	c.Env = append(os.Environ(), "LC_ALL=C")
	return c
}

func (s *Server) run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := s.command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", filepath.Base(name), err, out)
	}
}

// configure appends to postgresql.conf: the port, no unix socket (TCP
// only, so no directory outside the test's is touched), and conf.
func (s *Server) configure(t testing.TB, conf []string) {
	t.Helper()
	lines := append([]string{
		"port = " + strconv.Itoa(s.Port),
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = ''",
		"max_connections = 100",
		"shared_buffers = 16MB",
		"max_wal_senders = 4",
		"wal_keep_size = 64MB",
		"log_min_messages = warning",
	}, conf...)
	f, err := os.OpenFile(filepath.Join(s.dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n" + strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

// Start starts the server (again, after Stop) and waits until it accepts
// connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	c := s.command(s.bin+"/postgres", "-D", s.dir)
	logf, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.mu.Unlock()
		t.Fatal(err)
	}
	c.Stdout, c.Stderr = logf, logf
	if err := c.Start(); err != nil {
		s.mu.Unlock()
		logf.Close()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); logf.Close(); close(done) }()
	s.proc, s.done = c, done
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.URL)
		if err == nil {
			conn.Close(ctx)
			return
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
			t.Fatalf("postgres exited while starting:\n%s", log)
		case <-ctx.Done():
			t.Fatalf("postgres on port %d does not answer: %v", s.Port, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops the server: fast (SIGINT: roll back open transactions, write
// a checkpoint) or, with immediate, as a crash would (SIGQUIT: no
// checkpoint, recovery from the WAL at the next start).
func (s *Server) Stop(immediate bool) {
	if immediate {
		s.stop(syscall.SIGQUIT)
	} else {
		s.stop(syscall.SIGINT)
	}
}

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.proc.Process.Kill()
		<-s.done
	}
	s.proc = nil
}

// Exec runs sql on the server's database.
func (s *Server) Exec(t testing.TB, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
