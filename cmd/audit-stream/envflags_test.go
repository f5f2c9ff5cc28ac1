package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestApplyEnv(t *testing.T) {
	t.Parallel()
	secretFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(secretFile, []byte("s3cret-from-file\n"), 0o600)
	type cfg struct {
		addr, token, key string
		interval         time.Duration
		access           bool
		limit            int64
	}
	newFS := func() (*flag.FlagSet, *cfg) {
		var c cfg
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.StringVar(&c.addr, "addr", "0.0.0.0:8093", "")
		fs.StringVar(&c.token, "token", "", "")
		fs.StringVar(&c.key, "signing-key", "", "")
		fs.DurationVar(&c.interval, "checkpoint-interval", time.Second, "")
		fs.BoolVar(&c.access, "access-log", true, "")
		fs.Int64Var(&c.limit, "body-limit", 1<<20, "")
		fs.Bool("print-config", false, "")
		return fs, &c
	}
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		want    cfg
		source  map[string]string
		wantErr string
	}{
		{name: "defaults", want: cfg{addr: "0.0.0.0:8093", interval: time.Second, access: true, limit: 1 << 20}},
		{
			name:   "environment",
			env:    map[string]string{"AUDIT_STREAM_ADDR": "127.0.0.1:1", "AUDIT_STREAM_CHECKPOINT_INTERVAL": "5s", "AUDIT_STREAM_ACCESS_LOG": "false", "AUDIT_STREAM_BODY_LIMIT": "42"},
			want:   cfg{addr: "127.0.0.1:1", interval: 5 * time.Second, limit: 42},
			source: map[string]string{"addr": "env AUDIT_STREAM_ADDR", "access-log": "env AUDIT_STREAM_ACCESS_LOG"},
		},
		{
			name:   "the command line wins",
			args:   []string{"--addr", "127.0.0.1:2", "--access-log=true"},
			env:    map[string]string{"AUDIT_STREAM_ADDR": "127.0.0.1:1", "AUDIT_STREAM_ACCESS_LOG": "false"},
			want:   cfg{addr: "127.0.0.1:2", interval: time.Second, access: true, limit: 1 << 20},
			source: map[string]string{"addr": "flag", "access-log": "flag"},
		},
		{
			name: "empty is unset",
			env:  map[string]string{"AUDIT_STREAM_ADDR": "", "AUDIT_STREAM_BODY_LIMIT": ""},
			want: cfg{addr: "0.0.0.0:8093", interval: time.Second, access: true, limit: 1 << 20},
		},
		{
			name:   "secret value from a file",
			env:    map[string]string{"AUDIT_STREAM_TOKEN_FILE": secretFile},
			want:   cfg{addr: "0.0.0.0:8093", token: "s3cret-from-file", interval: time.Second, access: true, limit: 1 << 20},
			source: map[string]string{"token": "env AUDIT_STREAM_TOKEN_FILE"},
		},
		{
			name: "the plain variable wins over _FILE",
			env:  map[string]string{"AUDIT_STREAM_TOKEN": "direct", "AUDIT_STREAM_TOKEN_FILE": secretFile},
			want: cfg{addr: "0.0.0.0:8093", token: "direct", interval: time.Second, access: true, limit: 1 << 20},
		},
		{
			name:   "a key file by _FILE is the path",
			env:    map[string]string{"AUDIT_STREAM_SIGNING_KEY_FILE": "/run/secrets/signing.key"},
			want:   cfg{addr: "0.0.0.0:8093", key: "/run/secrets/signing.key", interval: time.Second, access: true, limit: 1 << 20},
			source: map[string]string{"signing-key": "env AUDIT_STREAM_SIGNING_KEY_FILE"},
		},
		{name: "bad duration", env: map[string]string{"AUDIT_STREAM_CHECKPOINT_INTERVAL": "soon"}, wantErr: `AUDIT_STREAM_CHECKPOINT_INTERVAL="soon": not a valid --checkpoint-interval`},
		{name: "bad bool", env: map[string]string{"AUDIT_STREAM_ACCESS_LOG": "maybe"}, wantErr: "AUDIT_STREAM_ACCESS_LOG"},
		{name: "bad number", env: map[string]string{"AUDIT_STREAM_BODY_LIMIT": "1MiB"}, wantErr: "not a valid --body-limit"},
		{name: "unreadable secret file", env: map[string]string{"AUDIT_STREAM_TOKEN_FILE": "/nonexistent/token"}, wantErr: "AUDIT_STREAM_TOKEN_FILE: open /nonexistent/token"},
		{name: "print-config is command line only", env: map[string]string{"AUDIT_STREAM_PRINT_CONFIG": "true"}, want: cfg{addr: "0.0.0.0:8093", interval: time.Second, access: true, limit: 1 << 20}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs, got := newFS()
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			src, err := applyEnv(fs, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("the error shows a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != c.want {
				t.Fatalf("config %+v, want %+v", *got, c.want)
			}
			for name, want := range c.source {
				if src[name] != want {
					t.Errorf("source of %s: %q, want %q", name, src[name], want)
				}
			}
			if fs.Lookup("print-config").Value.String() != "false" {
				t.Fatal("print-config taken from the environment")
			}
		})
	}
}

// The real serve command: --print-config shows the environment's values,
// redacts secrets and starts nothing.
func TestPrintConfig(t *testing.T) {
	t.Setenv("AUDIT_STREAM_CHECKPOINT_INTERVAL", "7s")
	t.Setenv("AUDIT_STREAM_DATA", "/srv/audit")
	t.Setenv("AUDIT_STREAM_ORIGIN", "PRIVATE+KEY+oops+12345678+AAAA") // a secret pasted where it does not belong
	code, out, errs := cli(t, "serve", "--print-config", "--max-streams", "9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		`checkpoint-interval  = "7s"`, "# env AUDIT_STREAM_CHECKPOINT_INTERVAL",
		`data                 = "/srv/audit"`,
		`max-streams          = "9"`, "# command line; env AUDIT_STREAM_MAX_STREAMS",
		`access-log           = "true"`, "# default; env AUDIT_STREAM_ACCESS_LOG",
		`origin               = "<redacted>"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PRIVATE+KEY") || strings.Contains(out, "print-config") {
		t.Errorf("--print-config output:\n%s", out)
	}
	t.Setenv("AUDIT_STREAM_MAX_STREAMS", "many")
	if code, _, errs := cli(t, "serve", "--print-config"); code != 2 || !strings.Contains(errs, `AUDIT_STREAM_MAX_STREAMS="many": not a valid --max-streams`) {
		t.Fatalf("bad environment value: exit %d %s", code, errs)
	}
}
