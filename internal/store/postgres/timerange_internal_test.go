package postgres

import (
	"context"
	"testing"

	"github.com/audit-stream/audit-stream/internal/ledger"
	"github.com/audit-stream/audit-stream/internal/pgtest"
	"github.com/audit-stream/audit-stream/internal/store/storetest"
)

// TestTimeRangesWhileAppending: the time map of one instance grows with the
// appends another instance makes, and finds exactly the events each time
// range selects (storetest.TimeRangesWhileAppending).
func TestTimeRangesWhileAppending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Schema(t)
	st := openTest(t, url)
	st.times.SetBlock(4)
	writer := openTest(t, url)
	led, err := ledger.Open(ctx, writer, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close(ctx)
	all := storetest.TimeRangesWhileAppending(t, st, led.Append)
	if ids, blocks := st.times.Covered(); ids != int64(len(all)) || blocks != (len(all)+3)/4 {
		t.Fatalf("time map covers %d ids in %d blocks after %d events", ids, blocks, len(all))
	}
}
