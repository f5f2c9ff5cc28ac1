package sqlite_test

import (
	"context"
	"testing"

	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/store/sqlite"
	"github.com/audit-stream/audit-stream/internal/store/storetest"
)

// TestTimeRangesWhileAppending: the time map grows with the log and finds
// exactly the events each time range selects (storetest.TimeRangesWhileAppending).
func TestTimeRangesWhileAppending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sqlite.SetTimeBlock(st, 4)
	led, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	storetest.TimeRangesWhileAppending(t, st, led.Append)
}
