package event

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestKindSet(t *testing.T) {
	if len(DefaultKindSet.Kinds()) != 22 || len(DefaultKindSet.Names()) != 22 {
		t.Fatalf("%d kinds", len(DefaultKindSet.Kinds()))
	}
	for _, k := range defaultKinds {
		got, ok := DefaultKindSet.Lookup(k.Name)
		if !ok || got != k || k.Description == "" || strings.Contains(k.Description, "\n") {
			t.Errorf("kind %q: %+v, %v", k.Name, got, ok)
		}
	}
	for in, want := range map[string]string{
		"request_denid":  `(did you mean "request_denied"?`,
		"Request_Denied": `(did you mean "request_denied"?`,
		"incident":       `"incident_filed"`,
		"zzzz":           `the closest valid kind is`,
	} {
		if got := DefaultKindSet.Unknown(in); !strings.Contains(got, want) || !strings.Contains(got, "GET /kinds") {
			t.Errorf("Unknown(%q) = %q, want it to contain %q", in, got, want)
		}
	}
	if _, err := KindSetOf([]Kind{{Name: "a"}, {Name: "a"}}); err == nil {
		t.Error("duplicate kinds accepted")
	}
	if _, err := KindSetOf([]Kind{{Name: ""}}); err == nil {
		t.Error("a kind without a name accepted")
	}
}

// The README lists every kind with its description.
func TestReadmeListsKinds(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range defaultKinds {
		if row := "| `" + k.Name + "` | " + k.Description + " |"; !strings.Contains(string(b), row) {
			t.Errorf("README lacks the row %s", row)
		}
	}
}

func TestTimestampPrecision(t *testing.T) {
	at := time.Date(2026, 5, 15, 5, 14, 15, 123456789, time.FixedZone("x", 2*3600))
	if got := Seconds.Format(at); got != "2026-05-15T03:14:15+00:00" {
		t.Errorf("seconds: %q", got)
	}
	if got := Microseconds.Format(at); got != "2026-05-15T03:14:15.123456+00:00" {
		t.Errorf("microseconds: %q", got)
	}
	var p TimestampPrecision
	for in, want := range map[string]TimestampPrecision{"seconds": Seconds, "microseconds": Microseconds} {
		if err := p.UnmarshalText([]byte(in)); err != nil || p != want || p.String() != in {
			t.Errorf("%q: %v, %v", in, p, err)
		}
	}
	if err := p.UnmarshalText([]byte("minutes")); err == nil {
		t.Error("minutes accepted")
	}
}
