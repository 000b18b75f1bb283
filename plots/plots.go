// Package plots draws the sweep's and a run's figures as PNG with
// gonum.org/v1/plot: XY charts (points, lines, error bars, log axes) with
// the legend beside the plot area so it never hides data, stacked panels
// sharing an x axis, and annotated heat maps with a colour bar.
package plots

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/houlsby/adapters/internal/atomicfile"
)

// Series is one set of points of a chart.
type Series struct {
	// Name is the legend entry.
	Name string
	// X and Y are the points; YErr, when set, draws ±YErr bars.
	X, Y, YErr []float64
	// Labels, when set, writes a short text next to every point.
	Labels []string
	// Line joins the points in order; Points draws a marker at each.
	Line, Points bool
	// Style picks the colour, marker and dash pattern (0, 1, 2, ...);
	// series with the same Style look the same.
	Style int
}

// Chart is an XY chart.
type Chart struct {
	Title, XLabel, YLabel string
	// LogX puts x on a log10 scale; Log2X on a log scale with a tick at
	// every power of two (bottleneck sizes).
	LogX, Log2X bool
	// XTicks, when set, are the labelled x ticks (e.g. the learning rates
	// searched), instead of the automatic ones.
	XTicks []float64
	// XMin and XMax, when XMax > XMin, fix the x range (panels that share
	// their x axis).
	XMin, XMax float64
	// Overlap marks a chart whose series may share points exactly (the
	// same validation score at the same rate): later series are then
	// dashed, so that earlier ones show through the gaps.
	Overlap bool
	Series  []Series
}

// Size of every figure: 8.5 x 4.5 inches at 96 dpi is 816 x 432 pixels.
const (
	width  = 8.5 * vg.Inch
	height = 4.5 * vg.Inch
	// legendWidth is the column right of the plot area that holds the
	// legend.
	legendWidth = 2.6 * vg.Inch
	dpi         = 96
)

// Font sizes: large enough to read in a README at its natural size.
var (
	titleSize = font.Length(13)
	labelSize = font.Length(11)
	tickSize  = font.Length(10)
	noteSize  = font.Length(8)
)

// newPlot is a plot with the shared fonts and a light grid.
func newPlot(title, xlabel, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = titleSize
	p.X.Label.Text, p.Y.Label.Text = xlabel, ylabel
	p.X.Label.TextStyle.Font.Size, p.Y.Label.TextStyle.Font.Size = labelSize, labelSize
	p.X.Tick.Label.Font.Size, p.Y.Tick.Label.Font.Size = tickSize, tickSize
	g := plotter.NewGrid()
	g.Vertical.Color = color.Gray{Y: 225}
	g.Horizontal.Color = color.Gray{Y: 225}
	p.Add(g)
	return p
}

// Plot builds the gonum plot of c and its legend.
func (c Chart) Plot() (*plot.Plot, plot.Legend, error) {
	p := newPlot(c.Title, c.XLabel, c.YLabel)
	leg := plot.NewLegend()
	leg.TextStyle.Font.Size = tickSize
	leg.Top, leg.Left = true, true
	leg.Padding = vg.Points(3)
	if c.LogX || c.Log2X {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = decadeTicks{}
		if c.Log2X {
			p.X.Tick.Marker = pow2Ticks{}
		}
	}
	if !c.LogX && !c.Log2X {
		p.X.Tick.Marker = roundTicks{}
	}
	if c.XMax > c.XMin {
		p.X.Min, p.X.Max = c.XMin, c.XMax
	} else if lo, hi, ok := c.xRange(); ok && (c.LogX || c.Log2X) {
		// Room around the outermost points so that their markers, error
		// bars and labels are not cut by the axes: a factor of 1.5 on a log
		// axis.
		p.X.Min, p.X.Max = lo/1.5, hi*1.5
	}
	if len(c.XTicks) > 0 {
		var ts plot.ConstantTicks
		for _, v := range c.XTicks {
			ts = append(ts, plot.Tick{Value: v, Label: shortNumber(v)})
		}
		p.X.Tick.Marker = ts
	}
	for i, s := range c.Series {
		order := 0
		if c.Overlap {
			order = i
		}
		if err := addSeries(p, &leg, s, c.LogX || c.Log2X, order); err != nil {
			return nil, leg, fmt.Errorf("plots: %s, series %q: %w", c.Title, s.Name, err)
		}
	}
	return p, leg, nil
}

// xRange is the range of the x values of every series.
func (c Chart) xRange() (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range c.Series {
		for _, x := range s.X {
			if !bad(x) && x > 0 {
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
		}
	}
	return lo, hi, lo <= hi
}

// addSeries adds the line, markers, error bars and labels of s, the
// order-th series: later series get dashed lines and smaller markers, so
// that an earlier series with exactly the same points still shows through.
func addSeries(p *plot.Plot, leg *plot.Legend, s Series, logX bool, order int) error {
	shrink := math.Min(float64(order)*0.5, 2)
	if len(s.X) != len(s.Y) || (s.YErr != nil && len(s.YErr) != len(s.Y)) || (s.Labels != nil && len(s.Labels) != len(s.Y)) {
		return fmt.Errorf("%d x, %d y, %d errors, %d labels", len(s.X), len(s.Y), len(s.YErr), len(s.Labels))
	}
	pts := make(plotter.XYs, 0, len(s.X))
	for i := range s.X {
		if bad(s.X[i]) || bad(s.Y[i]) || (logX && s.X[i] <= 0) {
			return fmt.Errorf("point %d is (%v, %v)", i, s.X[i], s.Y[i])
		}
		pts = append(pts, plotter.XY{X: s.X[i], Y: s.Y[i]})
	}
	col := plotutil.Color(s.Style)
	var thumbs []plot.Thumbnailer
	if s.Line {
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color, l.Width, l.Dashes = col, vg.Points(2), plotutil.Dashes(order+s.Style/7)
		p.Add(l)
		thumbs = append(thumbs, l)
	}
	if s.Points || !s.Line {
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(4 - shrink), Shape: plotutil.Shape(s.Style)}
		p.Add(sc)
		thumbs = append(thumbs, sc)
	}
	if s.YErr != nil {
		if err := addErrorBars(p, pts, s.YErr, col); err != nil {
			return err
		}
	}
	if s.Labels != nil {
		if err := addLabels(p, pts, s.Labels); err != nil {
			return err
		}
	}
	if s.Name != "" {
		leg.Add(s.Name, thumbs...)
	}
	return nil
}

func addErrorBars(p *plot.Plot, pts plotter.XYs, yerr []float64, col color.Color) error {
	e := make(plotter.YErrors, len(yerr))
	for i, v := range yerr {
		e[i].Low, e[i].High = v, v
	}
	bars, err := plotter.NewYErrorBars(struct {
		plotter.XYer
		plotter.YErrorer
	}{pts, e})
	if err != nil {
		return err
	}
	bars.Color = col
	p.Add(bars)
	return nil
}

func addLabels(p *plot.Plot, pts plotter.XYs, text []string) error {
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: text})
	if err != nil {
		return err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Size = noteSize
		l.TextStyle[i].XAlign = draw.XLeft
		l.TextStyle[i].YAlign = draw.YCenter
	}
	l.Offset = vg.Point{X: vg.Points(5)}
	p.Add(l)
	return nil
}

func bad(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }

// SavePNG draws c with its legend beside it into path, atomically.
func (c Chart) SavePNG(path string) error {
	p, leg, err := c.Plot()
	if err != nil {
		return err
	}
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	leg.Draw(draw.Crop(dc, width-legendWidth+vg.Points(6), 0, 0, -vg.Points(24)))
	return writePNG(path, img)
}

// Panels stacks charts that share their x axis into one PNG (each panel
// keeps its own legend, beside it).
func Panels(path string, charts []Chart) error {
	if len(charts) == 0 {
		return fmt.Errorf("plots: %s: no panels", path)
	}
	h := vg.Length(len(charts)) * 3 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(width, h), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: len(charts), Cols: 1, PadY: vg.Points(6)}
	area := draw.Crop(dc, 0, -legendWidth, 0, 0)
	ps := make([][]*plot.Plot, len(charts))
	legs := make([]plot.Legend, len(charts))
	for i, c := range charts {
		p, leg, err := c.Plot()
		if err != nil {
			return err
		}
		ps[i] = []*plot.Plot{p}
		legs[i] = leg
	}
	canvases := plot.Align(ps, tiles, area)
	for i := range ps {
		ps[i][0].Draw(canvases[i][0])
		cell := canvases[i][0]
		legs[i].Draw(draw.Crop(draw.Canvas{Canvas: dc.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: width - legendWidth + vg.Points(6), Y: cell.Min.Y},
			Max: vg.Point{X: width, Y: cell.Max.Y - vg.Points(24)},
		}}, 0, 0, 0, 0))
	}
	return writePNG(path, img)
}

// writePNG encodes img as PNG into path, atomically.
func writePNG(path string, img *vgimg.Canvas) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	err := atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(w)
		return err
	})
	if err != nil {
		return fmt.Errorf("plots: %s: %w", path, err)
	}
	return nil
}

// pow2Ticks marks every power of two in range (bottleneck sizes).
type pow2Ticks struct{}

// Ticks returns the labelled powers of two between min and max.
func (pow2Ticks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for v := 1.0; v <= max*1.0001; v *= 2 {
		if v >= min*0.9999 {
			out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	return out
}

// decadeTicks labels the powers of ten of a log axis in a short form (1k,
// 10M, 1e-4) and puts unlabelled minor ticks at 2..9 times them.
type decadeTicks struct{}

// Ticks returns the ticks between min and max.
func (decadeTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(min)); e <= math.Ceil(math.Log10(max)); e++ {
		d := math.Pow(10, e)
		for k := 1.0; k < 10; k++ {
			v := k * d
			if v < min*0.9999 || v > max*1.0001 {
				continue
			}
			t := plot.Tick{Value: v}
			if k == 1 {
				t.Label = shortNumber(v)
			}
			out = append(out, t)
		}
	}
	if countLabels(out) < 2 { // a range within one decade: label its ends
		out = append(out, plot.Tick{Value: min, Label: shortNumber(min)}, plot.Tick{Value: max, Label: shortNumber(max)})
	}
	return out
}

func countLabels(ts []plot.Tick) int {
	n := 0
	for _, t := range ts {
		if t.Label != "" {
			n++
		}
	}
	return n
}

// shortNumber writes 1500 as 1.5k, 2e6 as 2M, 3e-5 as 3e-5 and 0.25 as 0.25.
func shortNumber(v float64) string {
	trim := func(f float64) string { return strconv.FormatFloat(f, 'g', 3, 64) }
	switch a := math.Abs(v); {
	case a >= 1e9:
		return trim(v/1e9) + "G"
	case a >= 1e6:
		return trim(v/1e6) + "M"
	case a >= 1e3:
		return trim(v/1e3) + "k"
	case a >= 0.01 || a == 0:
		return trim(v)
	}
	s := strconv.FormatFloat(v, 'e', -1, 64) // 3e-05
	m, e, _ := strings.Cut(s, "e")
	return m + "e" + trimExp(e)
}

// trimExp writes an exponent without a plus sign or leading zeros: -05 -> -5.
func trimExp(e string) string {
	sign := ""
	if strings.HasPrefix(e, "-") {
		sign, e = "-", e[1:]
	}
	e = strings.TrimLeft(strings.TrimPrefix(e, "+"), "0")
	if e == "" {
		e = "0"
	}
	return sign + e
}

// roundTicks are gonum's default ticks labelled without trailing zeros
// ("50", not "50.00").
type roundTicks struct{}

// Ticks returns plot.DefaultTicks with shorter labels.
func (roundTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 6, 64)
		}
	}
	return ts
}
