package layout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/strangler-proxy/strangler/"

// rule forbids packages under from to depend on packages under to. Paths
// are relative to the module; a path matches itself and everything below,
// or, with exact, only itself.
type rule struct {
	from, to []string
	why      string
	exact    bool // to names packages, not trees
}

var rules = []rule{
	{[]string{"routes", "ported", "legacy-passthrough", "compare", "internal"}, []string{"proxy"},
		"the front door depends on routes, the handlers and the forwarder, never the other way round", false},
	{[]string{"ported"}, []string{"legacy-passthrough"}, "ported handlers and the forwarder are leaves: they meet only in the front door", false},
	{[]string{"legacy-passthrough"}, []string{"ported"}, "ported handlers and the forwarder are leaves: they meet only in the front door", false},
	{[]string{"compare"}, []string{"routes", "ported", "legacy-passthrough", "cmd"}, "the comparison engine is pure: it imports only internal/…", false},
	{[]string{"internal"}, []string{"routes", "ported", "legacy-passthrough", "compare", "cmd"}, "internal/… holds leaf helpers", false},
	{[]string{"proxy/control"}, []string{"proxy"}, "the front door reads the runtimes its control plane publishes, not the other way round", true},
	{[]string{"proxy/canary", "proxy/capture", "proxy/shadow", "proxy/shadowreport"}, []string{"proxy", "proxy/control"},
		"the shadow, canary and capture parts are used by the front door and the control plane alike", true},
}

func under(pkg string, roots []string) bool {
	for _, r := range roots {
		if pkg == r || strings.HasPrefix(pkg, r+"/") {
			return true
		}
	}
	return false
}

// violations lists every edge of deps (package → its dependencies, both
// relative to the module) that a rule forbids.
func violations(deps map[string][]string) []string {
	var out []string
	for _, pkg := range slices.Sorted(func(yield func(string) bool) {
		for k := range deps {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, d := range deps[pkg] {
			for _, r := range rules {
				hit := under(d, r.to)
				if r.exact {
					hit = slices.Contains(r.to, d)
				}
				if under(pkg, r.from) && hit {
					out = append(out, fmt.Sprintf("%s imports %s: %s", pkg, d, r.why))
				}
			}
		}
	}
	return out
}

// TestRulesCatchViolations: the rules refuse each kind of edge they exist
// for, and allow the ones the layout relies on.
func TestRulesCatchViolations(t *testing.T) {
	tests := []struct {
		from, to string
		bad      bool
	}{
		{"routes", "proxy/compare", true},
		{"routes", "proxy", true},
		{"ported/events", "proxy/shadow", true},
		{"legacy-passthrough", "proxy/control", true},
		{"ported/spool", "legacy-passthrough", true},
		{"legacy-passthrough", "ported/delivery", true},
		{"compare", "routes", true},
		{"internal/ascii", "compare", true},
		{"routes", "compare", false},
		{"legacy-passthrough", "routes", false},
		{"proxy", "legacy-passthrough", false},
		{"proxy/shadow", "ported/delivery", false},
		{"proxy/control", "proxy/shadow", false},
		{"proxy/control", "proxy", true},
		{"proxy", "proxy/control", false},
		{"proxy/shadow", "proxy/control", true},
		{"proxy/shadow", "proxy/shadowreport", false},
		{"cmd/strangler", "proxy", false},
		{"ported/events", "ported/delivery", false},
		{"routesx", "proxy", false}, // a prefix that is not a parent
	}
	for _, tt := range tests {
		got := violations(map[string][]string{tt.from: {tt.to}})
		if bad := len(got) > 0; bad != tt.bad {
			t.Errorf("%s → %s: violation %t, want %t (%v)", tt.from, tt.to, bad, tt.bad, got)
		}
	}
}

// TestImportDirection runs `go list -deps` over the module and checks
// every package's dependencies, its tests' included, against the rules.
func TestImportDirection(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-test", "-json=ImportPath,Imports", module+"...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	// -deps -test lists every package once per build it is part of; a test
	// build of P is "P [P.test]" with ForTest P. Direct imports of every
	// listed package are enough: the listing is already transitive.
	deps := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkg := strings.TrimPrefix(strings.Fields(p.ImportPath)[0], module)
		if pkg == strings.Fields(p.ImportPath)[0] || strings.HasSuffix(pkg, ".test") {
			continue // outside the module, or a test main
		}
		for _, imp := range p.Imports {
			imp = strings.Fields(imp)[0]
			if d, ok := strings.CutPrefix(imp, module); ok {
				deps[pkg] = append(deps[pkg], d)
			}
		}
	}
	if len(deps) < 20 {
		t.Fatalf("go list found %d packages of the module; the listing is not what this test expects", len(deps))
	}
	for _, v := range violations(deps) {
		t.Error(v)
	}
}
