package routes

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"unsafe"

	"github.com/spf13/viper"
	"github.com/valyala/fasthttp"
)

// Route is one compiled entry of the table. Routes belong to an immutable
// Table: never modify one.
type Route struct {
	// Name is unique in the table.
	Name string
	// Path as configured (`/api/v1/campaigns/{id}`).
	Path string
	// Host is lower-case without port; "" matches any host.
	Host string
	// HandlerName is the configured `handler`, "" if none.
	HandlerName string
	// Methods are upper-case; nil means every method.
	Methods []string
	// Mode is the configured mode. What a request gets is Match.Mode, which
	// is legacy whatever Mode says when the table has all_legacy set.
	Mode Mode
	// Handler is resolved from the Registry; nil when the route names none.
	Handler Handler
	// Fallback: see RouteConfig.Fallback.
	Fallback bool
	// Shadow has every default filled in; nil unless the route is in mode
	// shadow or configures a shadow block.
	Shadow *ShadowConfig
	// Canary has every default filled in; nil unless the route is in mode
	// canary or configures a canary block.
	Canary *CanaryConfig
	// Budgets has every default filled in; nil when the route has none.
	Budgets *Budgets
	// Verdict is never nil: the configured thresholds, defaults filled in.
	Verdict *Verdict
	// Capture has every default filled in; nil when the route has none.
	Capture *CaptureConfig

	index     int       // position in the config, for messages
	segs      []pathSeg // the parsed path; nil when it is invalid
	params    []paramRef
	canonical string // path with parameter names erased
}

// Match is the outcome of matching one request.
type Match struct {
	// Route is nil when no route matched: the request goes to legacy.
	Route *Route
	// Mode is the effective mode: ModeLegacy when unmatched or when the
	// table has all_legacy set, else Route.Mode.
	Mode Mode
}

// Table is a compiled, immutable route table, safe for concurrent Match.
// A nil *Table matches nothing.
type Table struct {
	routes    []*Route
	allLegacy bool
	anyHost   *matcher
	// hosts holds host-specific routes; consulted first. Nil when no route
	// names a host, so Match skips host normalisation.
	hosts map[string]*matcher
}

// matcher holds one path trie per known method plus one for routes that
// match every method. The method's own trie wins.
type matcher struct {
	byMethod [len(knownMethods)]*node
	any      *node
}

// Match finds the route for ctx's method, host and path, host-specific
// routes first, and records it in ctx for Param when its path has
// parameters. It allocates nothing: parameters are cut from the request
// path when asked for.
func (t *Table) Match(ctx *fasthttp.RequestCtx) Match {
	if t == nil {
		return Match{Mode: ModeLegacy}
	}
	path := requestPath(ctx)
	mi := methodIndex(ctx.Method())

	var r *Route
	if len(path) > 0 && path[0] == '/' {
		rest := path[1:]
		if t.hosts != nil {
			if m := t.hosts[hostKey(ctx.Host())]; m != nil {
				r = m.lookup(mi, rest)
			}
		}
		if r == nil && t.anyHost != nil {
			r = t.anyHost.lookup(mi, rest)
		}
	}
	if r == nil || r.params == nil {
		ctx.RemoveUserValue(paramsKey{}) // an earlier Match's
	} else {
		ctx.SetUserValue(paramsKey{}, r)
	}
	if r == nil {
		return Match{Mode: ModeLegacy}
	}
	if t.allLegacy {
		return Match{Route: r, Mode: ModeLegacy}
	}
	return Match{Route: r, Mode: r.Mode}
}

// lookup finds the route for rest (the path after its leading slash) in
// the method's trie, else in the any-method trie.
func (m *matcher) lookup(mi int, rest string) *Route {
	if mi >= 0 {
		if n := m.byMethod[mi]; n != nil {
			if r := n.find(rest); r != nil {
				return r
			}
		}
	}
	if m.any != nil {
		return m.any.find(rest)
	}
	return nil
}

// methodIndex is the index of m in knownMethods, or -1.
func methodIndex(m []byte) int {
	// switch on string(m) does not allocate.
	switch string(m) {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "POST":
		return 2
	case "PUT":
		return 3
	case "PATCH":
		return 4
	case "DELETE":
		return 5
	case "OPTIONS":
		return 6
	case "TRACE":
		return 7
	case "CONNECT":
		return 8
	}
	return -1
}

// hostKey strips the port and a trailing dot, lower-cases, and returns a
// string usable as a map key. fasthttp already lower-cases the host, so the
// allocating ToLower branch only runs for hosts set by hand.
func hostKey(h []byte) string {
	if len(h) > 0 && h[0] == '[' {
		if i := bytes.IndexByte(h, ']'); i >= 0 {
			h = h[:i+1]
		}
	} else if i := bytes.LastIndexByte(h, ':'); i >= 0 {
		h = h[:i]
	}
	if n := len(h); n > 0 && h[n-1] == '.' {
		h = h[:n-1]
	}
	for _, c := range h {
		if 'A' <= c && c <= 'Z' {
			return string(bytes.ToLower(h))
		}
	}
	return unsafe.String(unsafe.SliceData(h), len(h))
}

// Routes returns the routes in config order. The slice is a copy; the
// routes are shared and must not be modified.
func (t *Table) Routes() []*Route {
	if t == nil {
		return nil
	}
	return slices.Clone(t.routes)
}

// AllLegacy reports whether the kill switch is on.
func (t *Table) AllLegacy() bool { return t != nil && t.allLegacy }

// Compile validates c against reg and builds the matcher. On any problem it
// returns a *ValidationError listing all of them, including paths of the
// same shape (parameter names aside) as another route's on the same host
// and method, or differing from one only by a trailing slash.
func Compile(c Config, reg Registry) (*Table, error) {
	return compile(c, reg)
}

func compile(c Config, reg Registry) (*Table, error) {
	var p problems
	t := &Table{allLegacy: c.AllLegacy}
	names := map[string]int{}
	// byKey finds routes on the same host and method with the same path
	// shape; slashless finds those differing only by a trailing slash.
	byKey := map[string]*Route{}
	slashless := map[string]*Route{}
	var ok []*Route
	for i, rc := range c.Routes {
		r, good := resolve(i, rc, reg, &p)
		t.routes = append(t.routes, r)
		if r.Name != "" {
			if j, dup := names[r.Name]; dup {
				p.add(i, r.Name, "name %q is already used by routes[%d]; give each route a unique name", r.Name, j)
				good = false
			} else {
				names[r.Name] = i
			}
		}
		if r.segs == nil {
			continue
		}
		methods := r.Methods
		if methods == nil {
			methods = []string{"*"}
		}
		dups := map[*Route][]string{}
		var slashDup *Route
		for _, m := range methods {
			k := m + " " + r.Host + " " + r.canonical
			if o, seen := byKey[k]; seen {
				dups[o] = append(dups[o], m)
				continue
			}
			byKey[k] = r
			sk := m + " " + r.Host + " " + trimSlash(r.canonical)
			if o, seen := slashless[sk]; seen && o.canonical != r.canonical {
				slashDup = o
				continue
			}
			slashless[sk] = r
		}
		for _, o := range sortedByIndex(dups) {
			p.add(i, r.Name, "path %q duplicates routes[%d] %q for method(s) %s on %s (same method, host and path); remove one, or narrow its methods or host",
				r.Path, o.index, o.Name, strings.Join(dups[o], ","), hostLabel(r.Host))
			good = false
		}
		if slashDup != nil {
			p.add(i, r.Name, "path %q differs from routes[%d] %q path %q only by a trailing slash; a table routes one of the two forms, so that one endpoint is not split in two by a typo; keep one (the other form then goes to legacy)",
				r.Path, slashDup.index, slashDup.Name, slashDup.Path)
			good = false
		}
		if good {
			ok = append(ok, r)
		}
	}
	t.build(ok, &p)
	if len(p) > 0 {
		return nil, &ValidationError{Problems: p}
	}
	return t, nil
}

func trimSlash(s string) string {
	if len(s) > 1 {
		return strings.TrimSuffix(s, "/")
	}
	return s
}

func hostLabel(h string) string {
	if h == "" {
		return "any host"
	}
	return "host " + h
}

func sortedByIndex(m map[*Route][]string) []*Route {
	return slices.SortedFunc(maps.Keys(m), func(a, b *Route) int { return a.index - b.index })
}

// build registers routes into the hosts' and methods' tries. Compile has
// refused same-shape paths by then; a slot taken all the same becomes a
// problem naming both routes rather than a silent overwrite.
func (t *Table) build(routes []*Route, p *problems) {
	for _, r := range routes {
		m := t.matcherFor(r.Host)
		roots := []**node{&m.any}
		if r.Methods != nil {
			roots = roots[:0]
			for _, name := range r.Methods {
				roots = append(roots, &m.byMethod[slices.Index(knownMethods[:], name)])
			}
		}
		for _, root := range roots {
			if *root == nil {
				*root = &node{}
			}
			if o := (*root).add(r); o != nil {
				p.add(r.index, r.Name, "path %q takes the place of routes[%d] %q path %q in the matcher; make the paths differ by a literal segment",
					r.Path, o.index, o.Name, o.Path)
				break
			}
		}
	}
}

// matcherFor returns host's matcher ("" for any host), made on first use.
func (t *Table) matcherFor(host string) *matcher {
	if host == "" {
		if t.anyHost == nil {
			t.anyHost = &matcher{}
		}
		return t.anyHost
	}
	if t.hosts == nil {
		t.hosts = map[string]*matcher{}
	}
	m := t.hosts[host]
	if m == nil {
		m = &matcher{}
		t.hosts[host] = m
	}
	return m
}

// parse reads data into a fresh viper, in the format path's extension
// names (YAML when unknown). Fresh so nothing of an earlier read survives.
// It reads no file: the caller read data once, so everything it derives
// from it agrees.
func parse(path string, data []byte) (v *viper.Viper, err error) {
	// The watcher parses whatever an editor left in the file while the
	// proxy serves traffic; a parser panic must refuse the reload, not
	// crash the process.
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("parse: %v", p)
		}
	}()
	typ := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	if !slices.Contains(viper.SupportedExts, typ) {
		typ = "yaml"
	}
	v = viper.New()
	v.SetConfigType(typ)
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		return nil, fmt.Errorf("parse %s: %w", typ, err)
	}
	return v, nil
}

// RouteInfo describes a route for the admin /routes endpoint and
// `strangler routes`. It never carries secrets (canary override token).
type RouteInfo struct {
	Name string `json:"name"`
	// Methods is ["*"] for a route matching every method.
	Methods []string `json:"methods"`
	Host    string   `json:"host,omitempty"`
	Path    string   `json:"path"`
	Mode    Mode     `json:"mode"`
	// EffectiveMode is what requests get: legacy under all_legacy.
	EffectiveMode Mode   `json:"effective_mode"`
	Handler       string `json:"handler,omitempty"`
	Fallback      bool   `json:"fallback,omitempty"`
	// CanaryPercent is set for routes with a canary block.
	CanaryPercent *float64 `json:"canary_percent,omitempty"`
	// ShadowPrimary and ShadowSamplePercent are set for routes with a
	// shadow block (or in mode shadow).
	ShadowPrimary       Side     `json:"shadow_primary,omitempty"`
	ShadowSamplePercent *float64 `json:"shadow_sample_percent,omitempty"`
}

// Describe lists the routes in config order.
func (t *Table) Describe() []RouteInfo {
	if t == nil {
		return []RouteInfo{}
	}
	out := make([]RouteInfo, 0, len(t.routes))
	for _, r := range t.routes {
		ri := RouteInfo{
			Name: r.Name, Methods: slices.Clone(r.Methods), Host: r.Host, Path: r.Path,
			Mode: r.Mode, EffectiveMode: r.Mode, Handler: r.HandlerName, Fallback: r.Fallback,
		}
		if ri.Methods == nil {
			ri.Methods = []string{"*"}
		}
		if t.allLegacy {
			ri.EffectiveMode = ModeLegacy
		}
		if r.Canary != nil && r.Canary.Percent != nil {
			v := *r.Canary.Percent
			ri.CanaryPercent = &v
		}
		if r.Shadow != nil {
			v := *r.Shadow.SamplePercent
			ri.ShadowPrimary, ri.ShadowSamplePercent = r.Shadow.Primary, &v
		}
		out = append(out, ri)
	}
	return out
}

// Fprint writes the table as aligned text columns.
func (t *Table) Fprint(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if t.AllLegacy() {
		fmt.Fprintln(tw, "all_legacy: true (every request goes to legacy)")
	}
	fmt.Fprintln(tw, "NAME\tMETHODS\tHOST\tPATH\tMODE\tHANDLER")
	for _, ri := range t.Describe() {
		mode := string(ri.Mode)
		if ri.Mode == ModeCanary && ri.CanaryPercent != nil {
			mode = fmt.Sprintf("canary %g%%", *ri.CanaryPercent)
		}
		if ri.EffectiveMode != ri.Mode {
			mode += " (legacy)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ri.Name, strings.Join(ri.Methods, ","),
			orDash(ri.Host), ri.Path, mode, orDash(ri.Handler))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
