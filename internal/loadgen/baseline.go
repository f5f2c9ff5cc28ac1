package loadgen

import (
	"encoding/json"
	"net"
	"net/http"
	"sync/atomic"
)

// BareHandler is the baseline: a bare net/http handler that decodes the
// same JSON an append carries (an object on /events, an array of them on
// /events/batch) and answers 201 with the request echoed and an id, as
// the server answers with the stored event, storing nothing. What a load
// generator reaches against it is the ceiling the client and the HTTP
// stack allow on this machine.
func BareHandler() http.Handler {
	type request struct {
		Kind    string          `json:"kind"`
		Source  string          `json:"source"`
		Payload json.RawMessage `json:"payload"`
	}
	type answer struct {
		ID      int64           `json:"event_id"`
		Kind    string          `json:"kind"`
		Source  string          `json:"source"`
		Payload json.RawMessage `json:"payload"`
	}
	var id atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var reqs []request
		var err error
		batch := r.URL.Path == "/events/batch"
		if batch {
			err = json.NewDecoder(r.Body).Decode(&reqs)
		} else {
			reqs = make([]request, 1)
			err = json.NewDecoder(r.Body).Decode(&reqs[0])
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnprocessableEntity)
			return
		}
		first := id.Add(int64(len(reqs))) - int64(len(reqs))
		out := make([]answer, len(reqs))
		for i, q := range reqs {
			out[i] = answer{first + int64(i) + 1, q.Kind, q.Source, q.Payload}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		if batch {
			json.NewEncoder(w).Encode(out)
		} else {
			json.NewEncoder(w).Encode(out[0])
		}
	})
}

// StartBaseline serves BareHandler on a loopback port until the returned
// function is called.
func StartBaseline() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: BareHandler()}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { srv.Close(); <-done }, nil
}
