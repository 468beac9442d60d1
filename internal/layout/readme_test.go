package layout

import (
	"io/fs"
	"maps"
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
	goFiles(t, func(path, _ string, b []byte) {
		if !strings.HasSuffix(path, "_test.go") {
			for _, m := range registered.FindAllSubmatch(b, -1) {
				code[string(m[1])] = path
			}
		}
	})
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

// goFiles calls fn with every Go file of the module (testdata aside): its
// path, its package's directory relative to the module root, its bytes.
func goFiles(t *testing.T, fn func(path, pkg string, data []byte)) {
	t.Helper()
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg, err := filepath.Rel(root, filepath.Dir(path))
		fn(path, filepath.ToSlash(pkg), b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readmeSection is the README's "## heading" section, up to the next one.
func readmeSection(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	start := strings.Index(text, "\n## "+heading+"\n")
	if start < 0 {
		t.Fatalf("README has no %q section", heading)
	}
	section := text[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end+1]
	}
	return section
}

var layoutRow = regexp.MustCompile("(?m)^\\| `([^`]+)` \\| (.*) \\|$")

// The README's Layout table names every package of the module: by its
// path, or by its path below a `parent/…` row that names it; and every
// path it names is there.
func TestReadmeLayoutNamesEveryPackage(t *testing.T) {
	root := filepath.Join("..", "..")
	section := readmeSection(t, "Layout")
	rows := map[string]string{} // first column → the rest
	for _, m := range layoutRow.FindAllStringSubmatch(section, -1) {
		rows[m[1]] = m[2]
	}
	if len(rows) < 10 {
		t.Fatalf("read only %d rows of the Layout table: the reader is broken", len(rows))
	}

	pkgs := map[string]bool{}
	goFiles(t, func(_, pkg string, _ []byte) { pkgs[pkg] = true })
	if len(pkgs) < 30 {
		t.Fatalf("found only %d packages: the walk is broken", len(pkgs))
	}
	named := func(pkg string) bool {
		if strings.Contains(section, "`"+pkg+"`") {
			return true
		}
		for parent, rest := range rows {
			if p, ok := strings.CutSuffix(parent, "/…"); ok {
				if below, ok := strings.CutPrefix(pkg, p+"/"); ok && strings.Contains(rest, "`"+below+"`") {
					return true
				}
			}
		}
		return false
	}
	for _, pkg := range slices.Sorted(maps.Keys(pkgs)) {
		if !named(pkg) {
			t.Errorf("package %s has no place in the README's Layout table", pkg)
		}
	}
	for path := range rows {
		dir := strings.TrimSuffix(path, "/…")
		if st, err := os.Stat(filepath.Join(root, dir)); err != nil || !st.IsDir() {
			t.Errorf("the Layout table names %s, which is not a directory", path)
		}
	}
}

var (
	fuzzList   = regexp.MustCompile("committed seed corpora: ((?:`[a-z/]+` [A-Za-z ,]+)+)\\)")
	fuzzPkg    = regexp.MustCompile("`([a-z/]+)` ((?:Fuzz[A-Za-z]+(?:, | and )?)+)")
	fuzzTarget = regexp.MustCompile(`(?m)^func (Fuzz[A-Za-z0-9]+)\(f \*testing\.F\)`)
)

// The Security section names every fuzz target of the module, by package,
// and each has its committed seed corpus.
func TestReadmeNamesTheFuzzTargets(t *testing.T) {
	root := filepath.Join("..", "..")
	text := strings.Join(strings.Fields(readmeSection(t, "Security")), " ")
	m := fuzzList.FindStringSubmatch(text)
	if m == nil {
		t.Fatal("the Security section lists no fuzz targets")
	}
	named := map[string]bool{} // "pkg FuzzName"
	for _, p := range fuzzPkg.FindAllStringSubmatch(m[1], -1) {
		for _, f := range regexp.MustCompile(`Fuzz[A-Za-z]+`).FindAllString(p[2], -1) {
			named[p[1]+" "+f] = true
		}
	}
	code := map[string]bool{}
	goFiles(t, func(path, pkg string, b []byte) {
		if strings.HasSuffix(path, "_test.go") {
			for _, f := range fuzzTarget.FindAllSubmatch(b, -1) {
				code[pkg+" "+string(f[1])] = true
			}
		}
	})
	if len(code) < 3 {
		t.Fatalf("found only %d fuzz targets: the scan is broken", len(code))
	}
	for _, k := range slices.Sorted(maps.Keys(code)) {
		if !named[k] {
			t.Errorf("fuzz target %s is not in the Security section's list", k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(named)) {
		pkg, name, _ := strings.Cut(k, " ")
		if !code[k] {
			t.Errorf("the Security section names %s in %s, which has no such fuzz target", name, pkg)
			continue
		}
		corpus, err := os.ReadDir(filepath.Join(root, pkg, "testdata", "fuzz", name))
		if err != nil || len(corpus) == 0 {
			t.Errorf("fuzz target %s in %s has no committed seed corpus (testdata/fuzz/%s)", name, pkg, name)
		}
	}
}
