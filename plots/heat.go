package plots

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Heat is a heat map of Z[row][col] over integer cells, NaN cells left
// blank, every cell annotated with its value.
type Heat struct {
	Title, XLabel, YLabel string
	// Z[r][c] is the value of column c in row r (x = c, y = r).
	Z [][]float64
	// Format writes a cell's annotation ("%.3f" when empty).
	Format string
	// ColorLabel names the colour bar's quantity.
	ColorLabel string
}

// grid adapts Z to plotter.GridXYZ.
type grid struct{ z [][]float64 }

func (g grid) Dims() (c, r int)   { return len(g.z[0]), len(g.z) }
func (g grid) Z(c, r int) float64 { return g.z[r][c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }

// colorBarWidth is the column right of the map holding the colour bar.
const colorBarWidth = 1.3 * vg.Inch

// SavePNG draws the heat map and its colour bar into path, atomically.
func (h Heat) SavePNG(path string) error {
	if len(h.Z) == 0 || len(h.Z[0]) == 0 {
		return fmt.Errorf("plots: %s: empty heat map", h.Title)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, row := range h.Z {
		if len(row) != len(h.Z[0]) {
			return fmt.Errorf("plots: %s: ragged heat map", h.Title)
		}
		for _, v := range row {
			if !math.IsNaN(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if math.IsInf(lo, 0) {
		return fmt.Errorf("plots: %s: every cell is blank", h.Title)
	}
	if hi-lo < 1e-9 {
		lo, hi = lo-0.5, hi+0.5 // one colour: any range shows it
	}
	pal := moreland.SmoothBlueRed()
	pal.SetMin(lo)
	pal.SetMax(hi)
	p := newPlot(h.Title, h.XLabel, h.YLabel)
	hm := plotter.NewHeatMap(grid{h.Z}, pal.Palette(255))
	hm.NaN = color.White
	hm.Min, hm.Max = lo, hi
	p.Add(hm)
	if err := h.annotate(p); err != nil {
		return err
	}
	ticks := intTicks{}
	p.X.Tick.Marker, p.Y.Tick.Marker = ticks, ticks
	bar := newPlot("", "", h.ColorLabel)
	bar.HideX()
	cb := &plotter.ColorBar{ColorMap: pal, Vertical: true}
	bar.Add(cb)
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi))
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -colorBarWidth, 0, 0))
	bar.Draw(draw.Crop(dc, width-colorBarWidth+vg.Points(8), -vg.Points(8), vg.Points(40), -vg.Points(30)))
	return writePNG(path, img)
}

// annotate writes every non-blank cell's value at its centre.
func (h Heat) annotate(p *plot.Plot) error {
	format := h.Format
	if format == "" {
		format = "%.3f"
	}
	var xys plotter.XYs
	var text []string
	for r, row := range h.Z {
		for c, v := range row {
			if !math.IsNaN(v) {
				xys = append(xys, plotter.XY{X: float64(c), Y: float64(r)})
				text = append(text, fmt.Sprintf(format, v))
			}
		}
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: text})
	if err != nil {
		return err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Size = tickSize
		l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = draw.XCenter, draw.YCenter
	}
	p.Add(l)
	return nil
}

// intTicks labels every integer in range (layer numbers).
type intTicks struct{}

// Ticks returns a tick at each integer between min and max.
func (intTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for v := math.Ceil(min); v <= max; v++ {
		out = append(out, plot.Tick{Value: v, Label: strconv.Itoa(int(v))})
	}
	return out
}
