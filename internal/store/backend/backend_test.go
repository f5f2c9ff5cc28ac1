package backend_test

import (
	"context"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store/backend"
	"github.com/audit-stream/audit-stream/internal/store/postgres"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in       string
		dir, url string
		err      string
	}{
		{in: "./data", dir: "./data"},
		{in: "/var/lib/audit-stream", dir: "/var/lib/audit-stream"},
		{in: "sqlite:/var/lib/a", dir: "/var/lib/a"},
		{in: "postgres://u:pw@db:5432/audit?sslmode=require", url: "postgres://u:pw@db:5432/audit?sslmode=require"},
		{in: "postgresql://db/audit", url: "postgresql://db/audit"},
		{in: "", err: "empty"},
		{in: "sqlite:", err: "needs a directory"},
		{in: "postgres://u:pw@db:bad port/x", err: "bad PostgreSQL URL"},
	} {
		got, err := backend.Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) err = %v, want %q", tc.in, err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("Parse(%q) error shows the password: %v", tc.in, err)
			}
			continue
		}
		if err != nil || got.Dir != tc.dir || got.URL != tc.url {
			t.Errorf("Parse(%q) = %+v, %v; want dir %q url %q", tc.in, got, err, tc.dir, tc.url)
		}
		if strings.Contains(got.String(), "pw") {
			t.Errorf("%q prints as %q, with its password", tc.in, got)
		}
	}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	spec, _ := backend.Parse("sqlite:" + dir)
	st, err := backend.Open(ctx, spec, backend.Serve, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, ok := st.(*sqlite.Store); !ok {
		t.Fatalf("a directory opened %T", st)
	}
	// The admin store opens beside the server's.
	adm, err := backend.Open(ctx, spec, backend.Admin, nil)
	if err != nil {
		t.Fatal(err)
	}
	adm.Close()

	url := pgtest.Schema(t)
	spec, _ = backend.Parse(url)
	pg, err := backend.Open(ctx, spec, backend.Serve, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if _, ok := pg.(*postgres.Store); !ok {
		t.Fatalf("a postgres URL opened %T", pg)
	}
}

func TestWithReplica(t *testing.T) {
	pg, _ := backend.Parse("postgres://u:pw@primary/audit")
	dir, _ := backend.Parse("./data")
	for _, tc := range []struct {
		name string
		spec backend.Spec
		read string
		want string // the ReadURL, or the error's text
		ok   bool
	}{
		{"none", pg, "", "", true},
		{"a replica of a PostgreSQL store", pg, "postgres://u:pw@standby/audit", "postgres://u:pw@standby/audit", true},
		{"postgresql scheme", pg, "postgresql://standby/audit", "postgresql://standby/audit", true},
		{"a SQLite store has no replica", dir, "postgres://standby/audit", "needs a PostgreSQL store", false},
		{"a directory is no replica", pg, "./replica", "must be a postgres:// URL", false},
		{"a bad URL", pg, "postgres://u:pw@standby:bad port/x", "must be a postgres:// URL", false},
	} {
		got, err := tc.spec.WithReplica(tc.read)
		switch {
		case tc.ok && (err != nil || got.ReadURL != tc.want || got.URL != tc.spec.URL):
			t.Errorf("%s: %+v, %v; want ReadURL %q", tc.name, got, err, tc.want)
		case !tc.ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		case !tc.ok && strings.Contains(err.Error(), "pw"):
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
	// Without a replica, the read view is the store itself.
	st, err := backend.Open(context.Background(), backend.Spec{Dir: t.TempDir()}, backend.Serve, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if backend.Reads(st) != st {
		t.Error("Reads of a store without a replica is another store")
	}
}
