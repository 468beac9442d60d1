// Package pngplot is the few drawing primitives the benchmark and soak
// drivers need for their PNG plots (bars, lines, text in a fixed bitmap
// font), on the standard image packages.
package pngplot

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Colours used by both plots.
var (
	White  = color.RGBA{255, 255, 255, 255}
	Black  = color.RGBA{20, 20, 20, 255}
	Grey   = color.RGBA{90, 90, 90, 255}
	Light  = color.RGBA{220, 220, 220, 255}
	Blue   = color.RGBA{52, 101, 164, 255}
	Green  = color.RGBA{78, 154, 6, 255}
	Orange = color.RGBA{245, 121, 0, 255}
	Red    = color.RGBA{204, 0, 0, 255}
)

// New is a w×h white image.
func New(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{White}, image.Point{}, draw.Src)
	return img
}

// Fill paints a w×h rectangle at x, y.
func Fill(img *image.RGBA, x, y, w, h int, c color.RGBA) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), &image.Uniform{c}, image.Point{}, draw.Src)
}

// Text writes s with its baseline at y, starting at x (7×13 pixel glyphs).
// The font has ASCII only: a few common signs are spelled out, others
// become '?'.
func Text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: &image.Uniform{c}, Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(asciiOnly.Replace(s))
}

var asciiOnly = strings.NewReplacer("×", "x", "µ", "u", "–", "-", "—", "-", "÷", "/", "≤", "<=", "≥", ">=", "→", "->")

// Line draws a two-pixel line from (x0, y0) to (x1, y1).
func Line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := x1-x0, y1-y0
	n := max(abs(dx), abs(dy), 1)
	for i := 0; i <= n; i++ {
		x, y := x0+dx*i/n, y0+dy*i/n
		Fill(img, x, y, 2, 2, c)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// Save writes img to path as PNG.
func Save(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
