package pngplot

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestDrawAndSave(t *testing.T) {
	img := New(120, 40)
	Fill(img, 0, 0, 10, 10, Blue)
	Line(img, 0, 39, 119, 0, Red)
	Text(img, 12, 20, "1.05× µs", Black)
	if got := img.RGBAAt(5, 5); got != Blue {
		t.Errorf("filled pixel %v, want blue", got)
	}
	if got := img.RGBAAt(119, 0); got != Red {
		t.Errorf("line end %v, want red", got)
	}
	if asciiOnly.Replace("1.05× µs") != "1.05x us" {
		t.Errorf("non-ASCII signs not spelled out: %q", asciiOnly.Replace("1.05× µs"))
	}
	path := filepath.Join(t.TempDir(), "p.png")
	if err := Save(path, img); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if m, err := png.Decode(f); err != nil || m.Bounds().Dx() != 120 {
		t.Errorf("decode: %v", err)
	}
}
