package main

import (
	"fmt"
	"io"
	"time"
)

// progressLine reports a long walk on stderr every two seconds and once at
// the end: "verify: 8192/100000 events (41000 events/s)".
type progressLine struct {
	w       io.Writer
	prefix  string
	total   int64 // 0: not known, not shown
	start   time.Time
	next    time.Time
	checkAt int64
	n       int64
}

func newProgressLine(w io.Writer, prefix string, total int64) *progressLine {
	now := time.Now()
	return &progressLine{w: w, prefix: prefix, total: total, start: now, next: now.Add(2 * time.Second)}
}

// tick records that n events are done. It reads the clock only every few
// thousand events: it runs once per event on the walk's ordered path.
func (p *progressLine) tick(n int64) {
	p.n = n
	if n < p.checkAt {
		return
	}
	p.checkAt = n + 4096
	if now := time.Now(); now.After(p.next) {
		p.next = now.Add(2 * time.Second)
		of := ""
		if p.total > 0 {
			of = fmt.Sprintf("/%d", p.total)
		}
		fmt.Fprintf(p.w, "%s %d%s events (%.0f events/s)\n", p.prefix, n, of, float64(n)/now.Sub(p.start).Seconds())
	}
}

func (p *progressLine) done() {
	d := time.Since(p.start)
	fmt.Fprintf(p.w, "%s %d events in %s (%.0f events/s)\n", p.prefix, p.n, d.Round(time.Millisecond), float64(p.n)/d.Seconds())
}
