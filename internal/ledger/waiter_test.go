package ledger_test

import (
	"context"
	"testing"

	"github.com/audit-stream/audit-stream/event"
	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
)

func poked(w *ledger.Waiter) bool {
	select {
	case <-w.C():
		return true
	default:
		return false
	}
}

// A waiter is woken by the events its filter may want, and by the feed
// closing, and by nothing else.
func TestWaiterWakesOnlyForItsEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	feed := led.Feed()
	byKind := feed.Watch(store.Filter{Kinds: []string{"incident_filed"}})
	bySource := feed.Watch(store.Filter{Sources: []string{"billing"}})
	all := feed.Watch(store.Filter{})
	stopped := feed.Watch(store.Filter{})
	stopped.Stop()
	appendOne := func(kind, source string) {
		t.Helper()
		if _, err := led.Append(ctx, []event.Request{{Kind: kind, Source: source, Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string, wantKind, wantSource, wantAll bool) {
		t.Helper()
		if got := poked(byKind); got != wantKind {
			t.Errorf("%s: kind waiter woken %v, want %v", what, got, wantKind)
		}
		if got := poked(bySource); got != wantSource {
			t.Errorf("%s: source waiter woken %v, want %v", what, got, wantSource)
		}
		if got := poked(all); got != wantAll {
			t.Errorf("%s: unfiltered waiter woken %v, want %v", what, got, wantAll)
		}
		if poked(stopped) {
			t.Errorf("%s: a stopped waiter was woken", what)
		}
	}
	appendOne("request_denied", "gateway")
	check("other kind and source", false, false, true)
	appendOne("incident_filed", "gateway")
	check("its kind", true, false, true)
	appendOne("request_denied", "billing")
	check("its source", false, true, true)
	// Two wake-ups before a wait leave one pending: never lost, never piled.
	appendOne("incident_filed", "x")
	appendOne("incident_filed", "x")
	check("twice", true, false, true)
	led.Close(ctx)
	check("closed", true, true, true)
	byKind.Stop()
	bySource.Stop()
	all.Stop()
}
