package loadgen

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/kmwallet/pinreset/internal/pinreset"
)

// per second into one PNG.
func (r *loadRun) writePlot(path string, rep Report) error {
	if len(rep.sorted) == 0 {
		return errors.New("no answers to plot")
	}
	r.mu.Lock()
	perSec, okPer := slices.Clone(r.perSec), slices.Clone(r.okPer)
	r.mu.Unlock()
	lat := make([]float64, len(rep.sorted))
	for i, d := range rep.sorted {
		lat[i] = float64(d) / 1e6
	}
	title := fmt.Sprintf("pwctl load, %s: %d answers, %.1f/s, p50 %.1f ms, p99 %.1f ms",
		rep.Model, rep.Answered, rep.RPS, rep.P50ms, rep.P99ms)

	// The histogram stops at p99.9 so that a long tail does not squash
	// the body; the CDF shows everything.
	cut := lat[:max(1, int(math.Ceil(0.999*float64(len(lat)))))]
	hist := plot.New()
	hist.Title.Text = title
	hist.X.Label.Text = "latency (ms), up to p99.9"
	hist.Y.Label.Text = "answers"
	bins := 50
	if cut[0] == cut[len(cut)-1] {
		bins = 1
	}
	h, err := plotter.NewHist(plotter.Values(cut), bins)
	if err != nil {
		return err
	}
	h.FillColor = color.RGBA{R: 70, G: 130, B: 180, A: 255}
	hist.Add(h)

	cdf := plot.New()
	cdf.X.Label.Text = "latency (ms)"
	cdf.Y.Label.Text = "share answered within"
	cdf.Y.Min, cdf.Y.Max = 0, 1
	step := max(1, len(lat)/2000)
	var pts plotter.XYs
	for i := 0; i < len(lat); i += step {
		pts = append(pts, plotter.XY{X: lat[i], Y: float64(i+1) / float64(len(lat))})
	}
	pts = append(pts, plotter.XY{X: lat[len(lat)-1], Y: 1})
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Color = color.RGBA{R: 70, G: 130, B: 180, A: 255}
	cdf.Add(line, plotter.NewGrid())

	tp := plot.New()
	tp.X.Label.Text = "seconds since start (the last second may be partial)"
	tp.Y.Label.Text = "answers per second"
	tp.Y.Min = 0
	tp.Legend.Top = true
	for i, series := range [][]int{perSec, okPer} {
		var xy plotter.XYs
		for s, n := range series {
			xy = append(xy, plotter.XY{X: float64(s), Y: float64(n)})
		}
		xy = append(xy, plotter.XY{X: float64(len(series)), Y: float64(series[len(series)-1])})
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.StepStyle = plotter.PostStep
		l.Width = vg.Points(1.5)
		if i == 0 {
			l.Color = color.RGBA{R: 70, G: 130, B: 180, A: 255}
			tp.Legend.Add("all answers", l)
		} else {
			l.Color = color.RGBA{R: 46, G: 139, B: 87, A: 255}
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
			tp.Legend.Add(string(pinreset.CodeSuccess), l)
		}
		tp.Add(l)
	}
	tp.Add(plotter.NewGrid())

	for _, p := range []*plot.Plot{hist, cdf, tp} {
		p.X.Tick.Marker, p.Y.Tick.Marker = plot.TickerFunc(plainTicks), plot.TickerFunc(plainTicks)
	}
	img := vgimg.New(vg.Points(900), vg.Points(1000))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadY: vg.Points(24), PadTop: vg.Points(8), PadBottom: vg.Points(8),
		PadLeft: vg.Points(8), PadRight: vg.Points(16)}
	plots := [][]*plot.Plot{{hist}, {cdf}, {tp}}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// plainTicks are gonum's default ticks labelled without trailing zeros
// ("250", not "250.00"); a plot.Ticker as plot.TickerFunc(plainTicks).
func plainTicks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = strconv.FormatFloat(ticks[i].Value, 'f', -1, 64)
		}
	}
	return ticks
}
