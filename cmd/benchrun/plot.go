package main

import (
	"fmt"
	"image"
	"image/color"

	"github.com/strangler-proxy/strangler/internal/pngplot"
)

// The plot: one panel per group, one row per contender, req/s on the left
// and CPU µs per request on the right, stacked by process (proxy, upstream
// Nginx, PHP-FPM). Bars are scaled to the largest in their panel.
const (
	plotW    = 1100
	labelW   = 250
	barW     = 380
	gapW     = 40
	rowH     = 20
	panelPad = 30
)

var (
	colText  = pngplot.Black
	colRPS   = pngplot.Grey
	colProxy = pngplot.Blue
	colNginx = pngplot.Green
	colFPM   = pngplot.Orange
	colGrid  = pngplot.Light
)

func writePlot(path string, r report) error { return pngplot.Save(path, plotImage(r)) }

func plotImage(r report) *image.RGBA {
	groups := r.groups()
	h := 60
	for _, g := range groups {
		h += panelPad + rowH*(countIn(r.cs, g)+1)
	}
	img := pngplot.New(plotW, h)
	text(img, 10, 18, "Strangler `make bench`: req/s (left) and CPU us per request by process (right), medians", colText)
	x := labelW + barW + gapW
	legend := []struct {
		c    color.RGBA
		name string
	}{{colProxy, "proxy"}, {colNginx, "upstream Nginx"}, {colFPM, "PHP-FPM"}}
	for _, l := range legend {
		fill(img, x, 28, 12, 12, l.c)
		text(img, x+16, 38, l.name, colText)
		x += 30 + 7*len(l.name)
	}
	y := 60
	for _, g := range groups {
		y += panelPad
		text(img, 10, y-8, groupTitle[g], colText)
		var maxRPS, maxCPU float64
		for _, c := range r.cs {
			if c.Group == g {
				f := r.figures(c)
				maxRPS, maxCPU = max(maxRPS, f.rps), max(maxCPU, f.total)
			}
		}
		for _, c := range r.cs {
			if c.Group != g {
				continue
			}
			f := r.figures(c)
			text(img, 10, y+14, c.Name, colText)
			fill(img, labelW, y+2, 1, rowH-2, colGrid)
			w := scale(f.rps, maxRPS, barW-70)
			fill(img, labelW, y+4, w, rowH-6, colRPS)
			text(img, labelW+w+4, y+14, fmt.Sprintf("%.0f", f.rps), colText)
			x := labelW + barW + gapW
			fill(img, x, y+2, 1, rowH-2, colGrid)
			for _, part := range []struct {
				v float64
				c color.RGBA
			}{{f.proxy, colProxy}, {f.nginx, colNginx}, {f.fpm, colFPM}} {
				w := scale(part.v, maxCPU, barW-70)
				fill(img, x, y+4, w, rowH-6, part.c)
				x += w
			}
			text(img, x+4, y+14, fmt.Sprintf("%.1f", f.total), colText)
			y += rowH
		}
		y += rowH
	}
	return img
}

func countIn(cs []contender, g string) int {
	n := 0
	for _, c := range cs {
		if c.Group == g {
			n++
		}
	}
	return n
}

func scale(v, maxV float64, w int) int {
	if maxV <= 0 || v <= 0 {
		return 0
	}
	return int(v / maxV * float64(w))
}

var fill, text = pngplot.Fill, pngplot.Text
