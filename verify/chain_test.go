package verify_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/verify"
)

func testdata(name string) string { return filepath.Join("..", "testdata", name) }

// loadExport parses an export in the original service's GET /events form.
func loadExport(t *testing.T, raw json.RawMessage) []event.Event {
	t.Helper()
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		t.Fatal(err)
	}
	evs := make([]event.Event, len(items))
	for i, it := range items {
		e, err := event.ParseStored(it)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		evs[i] = e
	}
	return evs
}

func walk(evs []event.Event) verify.Report {
	c := verify.NewChain()
	for i := range evs {
		if err := c.Add(&evs[i]); err != nil {
			return c.Report(err.(*verify.ChainError))
		}
	}
	return c.Report(nil)
}

func stream(t *testing.T, evs []event.Event, workers int) verify.Report {
	t.Helper()
	src := func(ctx context.Context, fn func(*event.Event) error) error {
		for i := range evs {
			if err := fn(&evs[i]); err != nil {
				return err
			}
		}
		return nil
	}
	rep, err := verify.Stream(context.Background(), src, verify.StreamOptions{Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestSeedExportIsValid(t *testing.T) {
	raw, err := os.ReadFile(testdata("seed-export.json"))
	if err != nil {
		t.Fatal(err)
	}
	evs := loadExport(t, raw)
	for _, rep := range []verify.Report{walk(evs), stream(t, evs, 1), stream(t, evs, 4)} {
		if !rep.Valid || rep.Checked != 20 || rep.FirstBreakAt != nil || rep.Reason != nil {
			t.Fatalf("seed export: %+v, want valid with 20 checked", rep)
		}
	}
}

func TestTamperedExports(t *testing.T) {
	raw, err := os.ReadFile(testdata("seed-export-tampered.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Name   string          `json:"name"`
		Events json.RawMessage `json:"events"`
		Expect json.RawMessage `json:"expect"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no tampered cases")
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			var want verify.Report
			if err := json.Unmarshal(tc.Expect, &want); err != nil {
				t.Fatal(err)
			}
			wantJSON, _ := json.Marshal(want)
			evs := loadExport(t, tc.Events)
			for name, rep := range map[string]verify.Report{"walk": walk(evs), "stream1": stream(t, evs, 1), "stream3": stream(t, evs, 3)} {
				got, _ := json.Marshal(rep)
				if string(got) != string(wantJSON) {
					t.Errorf("%s: got %s, want %s", name, got, wantJSON)
				}
			}
		})
	}
}

// A long chain crosses many pipeline batches; a break deep inside must be
// found at the same place by the parallel walk as by the sequential one.
func TestStreamFindsBreakAcrossBatches(t *testing.T) {
	evs := make([]event.Event, 5000)
	prev := event.ZeroHash
	for i := range evs {
		evs[i] = event.Event{ID: int64(i + 1), Timestamp: "2026-05-15T03:00:00+00:00", Kind: "other", Source: "s", Payload: []byte(`{}`), PrevHash: prev}
		evs[i].Hash, _ = evs[i].ComputeHash(nil)
		prev = evs[i].Hash
	}
	if rep := stream(t, evs, 2); !rep.Valid || rep.Checked != 5000 {
		t.Fatalf("intact chain: %+v", rep)
	}
	evs[3210].Payload = []byte(`{"x":1}`)
	rep := stream(t, evs, 2)
	if rep.Valid || rep.Checked != 3210 || *rep.FirstBreakAt != 3211 || *rep.Reason != "hash mismatch at event #3211" {
		t.Fatalf("tampered chain: %+v", rep)
	}
}
