package loadgen

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// A chart is a stack of panels sharing the time axis, drawn as SVG by hand:
// a plot of a few lines does not justify a plotting dependency.
type chart struct {
	title, subtitle string
	xLabel          string
	panels          []panel
	// marks are labelled vertical lines across every panel (phases).
	marks []mark
}

type mark struct {
	x     float64
	label string
}

// panel is one plot of the chart: lines in one unit.
type panel struct {
	title  string
	unit   string
	series []series
}

type series struct {
	name   string
	color  string
	points [][2]float64 // x, y
}

// Layout of the SVG, in pixels.
const (
	svgWidth    = 860
	panelHeight = 200
	marginLeft  = 70
	marginRight = 190 // the legend
	marginTop   = 75
	panelGap    = 60
	marginBot   = 50
)

// niceStep is a 1, 2 or 5 × 10^k step that cuts span into about n parts.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// svg renders the chart.
func (c chart) svg() []byte {
	var b bytes.Buffer
	plotW := float64(svgWidth - marginLeft - marginRight)
	height := marginTop + len(c.panels)*(panelHeight+panelGap) - panelGap + marginBot
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		svgWidth, height, svgWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", marginLeft, html.EscapeString(c.title))
	fmt.Fprintf(&b, `<text x="%d" y="40">%s</text>`+"\n", marginLeft, html.EscapeString(c.subtitle))

	// One x range for every panel.
	xMax := 0.0
	for _, p := range c.panels {
		for _, s := range p.series {
			for _, pt := range s.points {
				xMax = max(xMax, pt[0])
			}
		}
	}
	xStep := niceStep(xMax, 10)
	xMax = math.Max(xStep, math.Ceil(xMax/xStep)*xStep)
	for i, p := range c.panels {
		top := float64(marginTop + i*(panelHeight+panelGap))
		yMax := 0.0
		for _, s := range p.series {
			for _, pt := range s.points {
				yMax = max(yMax, pt[1])
			}
		}
		yStep := niceStep(yMax, 4)
		yMax = math.Max(yStep, math.Ceil(yMax/yStep)*yStep)
		x := func(v float64) float64 { return marginLeft + v/xMax*plotW }
		y := func(v float64) float64 { return top + panelHeight - v/yMax*panelHeight }
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-weight="bold">%s</text>`+"\n", marginLeft, top-8, html.EscapeString(p.title))
		// Grid, ticks and labels.
		for v := 0.0; v <= yMax+yStep/2; v += yStep {
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", marginLeft, y(v), marginLeft+plotW, y(v))
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", marginLeft-6, y(v)+4, formatTick(v))
		}
		for v := 0.0; v <= xMax+xStep/2; v += xStep {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999"/>`+"\n", x(v), top+panelHeight, x(v), top+panelHeight+4)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x(v), top+panelHeight+17, formatTick(v))
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%d" fill="none" stroke="#333"/>`+"\n", marginLeft, top, plotW, panelHeight)
		for _, m := range c.marks {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-dasharray="4 3"/>`+"\n", x(m.x), top, x(m.x), top+panelHeight)
			if i == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="11" fill="#555">%s</text>`+"\n", x(m.x)+3, top-22, html.EscapeString(m.label))
			}
		}
		fmt.Fprintf(&b, `<text transform="translate(%d %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n",
			18, top+panelHeight/2, html.EscapeString(p.unit))
		for j, s := range p.series {
			if len(s.points) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="`, s.color)
				for k, pt := range s.points {
					if k > 0 {
						b.WriteByte(' ')
					}
					fmt.Fprintf(&b, "%.1f,%.1f", x(pt[0]), y(pt[1]))
				}
				b.WriteString(`"/>` + "\n")
			}
			ly := top + 14 + float64(j)*18
			lx := marginLeft + plotW + 14
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", lx, ly-4, lx+18, ly-4, s.color)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+24, ly, html.EscapeString(s.name))
		}
	}
	last := float64(marginTop + len(c.panels)*(panelHeight+panelGap) - panelGap)
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", marginLeft+plotW/2, last+38, html.EscapeString(c.xLabel))
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// formatTick prints a tick value without trailing zeros.
func formatTick(v float64) string {
	if math.Abs(v) >= 1e6 {
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}
