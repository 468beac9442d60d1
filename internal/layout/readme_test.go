package layout

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	// A metric is registered by name in a prometheus *Opts or a Desc.
	registered = regexp.MustCompile(`(?:Name:\s*|NewDesc\()"(strangler_[a-z0-9_]+)"`)
	tableRow   = regexp.MustCompile("(?m)^\\| `(strangler_[a-z0-9_]+)` \\|")
	mentioned  = regexp.MustCompile(`strangler_[a-z0-9_]+`)
)

// The README's metrics table lists exactly the metrics the code registers,
// and every metric name the README mentions anywhere exists.
func TestReadmeNamesTheMetricsTheCodeRegisters(t *testing.T) {
	root := filepath.Join("..", "..")
	code := map[string]string{} // name → file
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range registered.FindAllSubmatch(b, -1) {
			code[string(m[1])] = path
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(code) < 40 {
		t.Fatalf("found only %d registered metrics: the scan is broken", len(code))
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]bool{}
	for _, m := range tableRow.FindAllSubmatch(readme, -1) {
		table[string(m[1])] = true
	}
	for name, file := range code {
		if !table[name] {
			t.Errorf("%s (registered in %s) has no row in the README's metrics table", name, file)
		}
	}
	var stale []string
	for _, m := range mentioned.FindAll(readme, -1) {
		if _, ok := code[string(m)]; !ok && !slices.Contains(stale, string(m)) {
			stale = append(stale, string(m))
		}
	}
	for _, name := range stale {
		t.Errorf("the README names %s, which no code registers", name)
	}
}
