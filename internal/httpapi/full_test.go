package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/audit-stream/audit-stream/internal/apitest"
	"github.com/audit-stream/audit-stream/internal/store"
	"github.com/audit-stream/audit-stream/internal/store/faultstore"
)

// A full disk is not a server fault: appends get a 503 with Retry-After and
// a detail that says the disk is full, reads keep working, and appends
// resume when space returns.
func TestDiskFullAnswers503(t *testing.T) {
	t.Parallel()
	var fs *faultstore.Store
	env := apitest.Start(t, apitest.Options{Wrap: func(st store.Store) store.Store {
		fs = faultstore.New(st)
		return fs
	}})
	ev := `{"kind":"request_denied","source":"s"}`
	if r := call(t, "POST", env.URL+"/events", "", ev, "Content-Type", "application/json"); r.status != 201 {
		t.Fatalf("append: %d %s", r.status, r.body)
	}
	fs.Fail(faultstore.AppendBeforeCommit, faultstore.ErrDiskFull)
	for _, c := range []struct{ path, body string }{
		{"/events", ev},
		{"/events/batch", "[" + ev + "," + ev + "]"},
	} {
		r := call(t, "POST", env.URL+c.path, "", c.body, "Content-Type", "application/json")
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || !strings.Contains(r.detail(), "disk is full") {
			t.Errorf("POST %s on a full disk: %d %v %s", c.path, r.status, r.header, r.body)
		}
	}
	for _, path := range []string{"/events", "/events/1", "/stats", "/verify", "/checkpoint", "/export"} {
		if r := call(t, "GET", env.URL+path, "", ""); r.status != 200 {
			t.Errorf("GET %s on a full disk: %d %s", path, r.status, r.body)
		}
	}
	fs.HealAll()
	if r := call(t, "POST", env.URL+"/events", "", ev, "Content-Type", "application/json"); r.status != 201 || !strings.Contains(string(r.body), `"event_id":2`) {
		t.Fatalf("append after space returned: %d %s", r.status, r.body)
	}
}
