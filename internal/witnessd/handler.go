package witnessd

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/audit-stream/audit-stream/witness"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// HandlerOptions configures the witness's HTTP interface.
type HandlerOptions struct {
	// BodyTimeout bounds the time from a request's start to the end of
	// its body, so that a slow sender cannot hold a connection; 10 s by
	// default.
	BodyTimeout time.Duration
	Logger      *slog.Logger
}

// Handler serves the tlog-witness API:
//
//	POST /add-checkpoint            cosign a checkpoint
//	GET  /{origin hash}/checkpoint  the latest cosigned checkpoint of a log
//	GET  /                          the witness's name, key and logs (JSON)
//	GET  /healthz, GET /metrics
func Handler(w *Witness, opt HandlerOptions) http.Handler {
	if opt.BodyTimeout <= 0 {
		opt.BodyTimeout = 10 * time.Second
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{w: w, opt: opt}
	reg := prometheus.NewRegistry()
	h.added = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "audit_stream_witness_add_checkpoint_total",
		Help: "add-checkpoint requests by HTTP status code.",
	}, []string{"code"})
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), h.added,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "audit_stream_witness_logs", Help: "Logs this witness follows."},
			func() float64 { return float64(len(w.logs)) }))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", h.addCheckpoint)
	mux.HandleFunc("GET /{hash}/checkpoint", h.checkpoint)
	mux.HandleFunc("GET /{$}", h.index)
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		io.WriteString(rw, `{"status":"ok"}`+"\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/", func(rw http.ResponseWriter, r *http.Request) {
		writeProblem(rw, http.StatusNotFound, "no such route: this witness serves POST /add-checkpoint and GET /<origin hash>/checkpoint")
	})
	return mux
}

type handler struct {
	w     *Witness
	opt   HandlerOptions
	added *prometheus.CounterVec
}

// statusOf maps an AddCheckpoint error to its tlog-witness status code.
func statusOf(err error) int {
	var rerr *witness.RequestError
	var conflict *ConflictError
	switch {
	case errors.As(err, &rerr), errors.Is(err, ErrMalformed):
		return http.StatusBadRequest
	case errors.Is(err, ErrUnknownLog):
		return http.StatusNotFound
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.As(err, &conflict):
		return http.StatusConflict
	case errors.Is(err, ErrInconsistent):
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

func (h *handler) addCheckpoint(rw http.ResponseWriter, r *http.Request) {
	code := h.serveAdd(rw, r)
	h.added.WithLabelValues(strconv.Itoa(code)).Inc()
}

func (h *handler) serveAdd(rw http.ResponseWriter, r *http.Request) int {
	// The whole body within BodyTimeout of the request's start, and no
	// more than MaxRequestSize of it: a hostile client gets neither a
	// connection held open nor memory.
	rc := http.NewResponseController(rw)
	rc.SetReadDeadline(time.Now().Add(h.opt.BodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, witness.MaxRequestSize))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return writeProblem(rw, http.StatusRequestEntityTooLarge, "an add-checkpoint body is at most "+strconv.Itoa(witness.MaxRequestSize)+" bytes")
	case errors.Is(err, os.ErrDeadlineExceeded):
		rw.Header().Set("Connection", "close")
		return writeProblem(rw, http.StatusRequestTimeout, "the request body did not arrive within "+h.opt.BodyTimeout.String())
	case err != nil:
		rw.Header().Set("Connection", "close")
		return writeProblem(rw, http.StatusBadRequest, "reading the request body: "+err.Error())
	}
	rc.SetReadDeadline(time.Time{})
	req, err := witness.ParseAddCheckpoint(body)
	if err == nil {
		var line []byte
		if line, err = h.w.AddCheckpoint(r.Context(), req); err == nil {
			rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
			rw.Write(line)
			return http.StatusOK
		}
	}
	code := statusOf(err)
	var conflict *ConflictError
	if errors.As(err, &conflict) {
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(code)
		io.WriteString(rw, strconv.FormatInt(conflict.Size, 10)+"\n")
		return code
	}
	if code == http.StatusInternalServerError {
		h.opt.Logger.Error("add-checkpoint failed", "err", err)
		return writeProblem(rw, code, "the witness could not store its state; nothing was cosigned")
	}
	h.opt.Logger.Debug("add-checkpoint refused", "code", code, "err", err)
	return writeProblem(rw, code, err.Error())
}

func (h *handler) checkpoint(rw http.ResponseWriter, r *http.Request) {
	signed := h.w.Checkpoint(r.PathValue("hash"))
	if signed == nil {
		writeProblem(rw, http.StatusNotFound, "this witness has cosigned no checkpoint of a log whose origin hashes to "+strconv.Quote(clip(r.PathValue("hash"))))
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-cache")
	rw.Write(signed)
}

func (h *handler) index(rw http.ResponseWriter, r *http.Request) {
	rw.Header().Set("Content-Type", "application/json")
	json.NewEncoder(rw).Encode(map[string]any{
		"name":         h.w.Name(),
		"verifier_key": h.w.VerifierKey(),
		"logs":         h.w.Logs(),
	})
}

// writeProblem answers with an RFC 9457 problem document.
func writeProblem(rw http.ResponseWriter, code int, detail string) int {
	rw.Header().Set("Content-Type", "application/problem+json")
	rw.WriteHeader(code)
	json.NewEncoder(rw).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(code), "status": code, "detail": detail,
	})
	return code
}
