package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// Report is a run and, if measured, its baseline from the same invocation.
type Report struct {
	Result
	Baseline *Result `json:"baseline,omitempty"`
	// Ratio is Ratio(Result, *Baseline); 0 without a baseline.
	Ratio float64 `json:"ratio_to_baseline,omitempty"`
}

// NewReport pairs r with its baseline (nil for none).
func NewReport(r Result, baseline *Result) Report {
	rep := Report{Result: r, Baseline: baseline}
	if baseline != nil {
		rep.Ratio = Ratio(r, *baseline)
	}
	return rep
}

// WriteJSON writes the report as one JSON object.
func (rep Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteTable writes the report as a table for people.
func (rep Report) WriteTable(w io.Writer) error {
	workload := rep.Workload
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\tworkload\tclients\tseconds\trequests\terrors\treq/s\tevents/s\tp50 ms\tp99 ms\tmax ms\t")
	row := func(r Result) {
		wl := string(r.Workload)
		if r.BatchSize > 0 {
			wl = fmt.Sprintf("%s(%d)", wl, r.BatchSize)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%d\t%d\t%.0f\t%.0f\t%.2f\t%.2f\t%.2f\t\n",
			r.Target, wl, r.Producers, r.Seconds, r.Requests, r.Errors, r.RequestsPerSec, r.EventsPerSec,
			r.Latency.P50, r.Latency.P99, r.Latency.Max)
	}
	row(rep.Result)
	if rep.Baseline != nil {
		row(*rep.Baseline)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Workload == Fanout {
		where := "in the tool's process"
		if rep.SubscriberProcess {
			where = "in a process of their own"
		}
		fmt.Fprintf(w, "fan-out: %d subscribers (%s), each received %.0f events/s (slowest %.0f), lag p50 %.1f ms, p99 %.1f ms\n",
			rep.Subscribers, where, rep.DeliveredPerSubMean, rep.DeliveredPerSubMin, rep.LagP50, rep.LagP99)
		paced := ""
		if rep.Rate > 0 {
			paced = fmt.Sprintf(" (paced at %d events/s)", rep.Rate)
		}
		var alone Latency
		if rep.AloneLatency != nil {
			alone = *rep.AloneLatency
		}
		fmt.Fprintf(w, "producers%s: %.0f events/s with the subscribers, %.0f without (ratio %.2f); append p50/p99 %.1f/%.1f ms with, %.1f/%.1f ms without; server heap at most %.1f MiB\n",
			paced, rep.EventsPerSec, rep.AloneEventsPerSec, rep.ProducerRatio, rep.Latency.P50, rep.Latency.P99, alone.P50, alone.P99, rep.HeapMaxMB)
		fmt.Fprintf(w, "cpu: server %.1f s, this process %.1f s, subscriber process %.1f s, over %.1f s\n",
			rep.ServerCPUSeconds, rep.CPUSeconds, rep.SubscriberCPUSeconds, rep.Seconds)
	}
	if rep.Workload != Fanout && rep.HeapMaxMB > 0 {
		fmt.Fprintf(w, "server heap at most %.1f MiB\n", rep.HeapMaxMB)
	}
	if rep.Baseline != nil {
		unit := "events/s"
		if workload != Append && workload != Batch && workload != Fanout {
			unit = "requests/s, over the baseline's single appends"
		}
		fmt.Fprintf(w, "ratio to the bare handler (%s): %.3g\n", unit, rep.Ratio)
	}
	if rep.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", rep.FirstError)
	}
	_, err := fmt.Fprintln(w, "(a shared machine is noisy: compare ratios from one run, not figures across runs)")
	return err
}
