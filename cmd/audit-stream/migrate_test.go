package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/checkpoint"
	"github.com/audit-stream/audit-stream/internal/pgtest"
)

// A log moves from SQLite to PostgreSQL and back: each export imports into
// the other store, and the exports and verify reports (root hash included)
// are identical.
func TestMigrateSQLiteToPostgresAndBack(t *testing.T) {
	url := pgtest.Schema(t)
	dir := t.TempDir()
	skey, _, err := checkpoint.GenerateKey("example.com/moved")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "signing.key")
	if err := checkpoint.WriteKeyFile(key, skey); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "src")
	seed := filepath.Join("..", "..", "testdata", "seed-export.json")
	if code, out, errs := cli(t, "import", seed, "--data", src, "--origin", "example.com/moved", "--signing-key", key); code != 0 {
		t.Fatalf("import into SQLite: exit %d: %s %s", code, out, errs)
	}
	export := func(store string) string {
		t.Helper()
		code, out, errs := cli(t, "export", "--store", store)
		if code != 0 || out == "" {
			t.Fatalf("export from %s: exit %d: %s", store, code, errs)
		}
		return out
	}
	fromSQLite := export(src)
	file := writeFile(t, dir, "sqlite.ndjson", fromSQLite)
	code, pgReport, errs := cli(t, "import", file, "--store", url, "--origin", "example.com/moved", "--signing-key", key)
	if code != 0 {
		t.Fatalf("import into PostgreSQL: exit %d: %s %s", code, pgReport, errs)
	}
	fromPG := export(url)
	if fromPG != fromSQLite {
		t.Fatal("the PostgreSQL export differs from the SQLite one")
	}
	back := filepath.Join(dir, "back")
	code, backReport, errs := cli(t, "import", writeFile(t, dir, "pg.ndjson", fromPG), "--data", back, "--origin", "example.com/moved", "--signing-key", key)
	if code != 0 {
		t.Fatalf("import back into SQLite: exit %d: %s %s", code, backReport, errs)
	}
	if export(back) != fromSQLite {
		t.Fatal("the log that went to PostgreSQL and back differs")
	}
	var a, b map[string]any
	if json.Unmarshal([]byte(pgReport), &a) != nil || json.Unmarshal([]byte(backReport), &b) != nil ||
		a["valid"] != true || a["root_hash"] == nil || a["root_hash"] != b["root_hash"] || a["checked"] != b["checked"] {
		t.Fatalf("verify reports differ:\n%s\n%s", pgReport, backReport)
	}
	if n := strings.Count(fromSQLite, "\n"); n != 20 {
		t.Fatalf("export holds %d events, want the seed's 20", n)
	}
}
