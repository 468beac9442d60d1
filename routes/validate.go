package routes

import (
	"fmt"
	"maps"
	"math"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// knownMethods are the methods a route may list; their index selects the
// route's matcher trie. Custom methods reach only routes without methods.
var knownMethods = [...]string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}

// CatchAllParam is the name under which Param gives what a trailing `*`
// matched.
const CatchAllParam = "*"

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)
	paramRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	labelRE = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$`)
)

// minOverrideToken keeps the canary override from being guessable.
const minOverrideToken = 16

// Validate reports every problem in c, each message naming the route (index
// and name), the field and the fix. It is pure: it builds the matcher in
// memory to find conflicting paths but touches no file or network.
func (c Config) Validate(reg Registry) error {
	_, err := compile(c, reg)
	return err
}

// problems collects validation messages.
type problems []string

func (p *problems) add(i int, name, format string, args ...any) {
	*p = append(*p, routeRef(i, name)+": "+fmt.Sprintf(format, args...))
}

// parsedPath is a validated route path.
type parsedPath struct {
	segs   []pathSeg
	params []paramRef
	// canonical has parameter names erased, so /a/{id} and /a/{x} collide.
	canonical string
}

// resolve checks one route config and returns the compiled route (without
// matcher state). ok is false when any problem was found.
func resolve(i int, rc RouteConfig, reg Registry, p *problems) (r *Route, ok bool) {
	before := len(*p)
	name := rc.Name
	switch {
	case name == "":
		p.add(i, name, "name is required; give the route a unique name such as \"campaign_get\" ([a-z0-9_.-])")
	case !nameRE.MatchString(name):
		p.add(i, name, "name %q may use only a-z, 0-9, _, . and - (at most 64 characters); e.g. %q", name, suggestName(name))
	}

	r = &Route{Name: name, Path: rc.Path, HandlerName: rc.Handler, Fallback: rc.Fallback, index: i}

	for _, m := range rc.Methods {
		up := strings.ToUpper(strings.TrimSpace(m))
		switch {
		case !slices.Contains(knownMethods[:], up):
			p.add(i, name, "methods: %q is not a supported HTTP method; use any of %s, or leave methods out for every method", m, strings.Join(knownMethods[:], ", "))
		case slices.Contains(r.Methods, up):
			p.add(i, name, "methods: %s is listed twice; list each method once", up)
		default:
			r.Methods = append(r.Methods, up)
		}
	}

	if pp, msg := parsePath(rc.Path); msg != "" {
		p.add(i, name, "%s", msg)
	} else {
		r.segs, r.params, r.canonical = pp.segs, pp.params, pp.canonical
	}

	if rc.Host != "" {
		h, msg := normalizeHost(rc.Host)
		if msg != "" {
			p.add(i, name, "%s", msg)
		}
		r.Host = h
	}

	r.Mode = rc.Mode
	switch rc.Mode {
	case "":
		r.Mode = ModeLegacy
	case ModeLegacy, ModeShadow, ModeCanary, ModePorted:
	default:
		p.add(i, name, "mode %q is not valid; use one of legacy, shadow, canary, ported", string(rc.Mode))
	}

	known := strings.Join(slices.Sorted(maps.Keys(reg)), ", ")
	if known == "" {
		known = "(none)"
	}
	switch {
	case rc.Handler == "" && (r.Mode == ModeShadow || r.Mode == ModeCanary || r.Mode == ModePorted):
		p.add(i, name, "handler is required for mode %s; set handler to one of: %s (or use mode legacy)", r.Mode, known)
	case rc.Handler != "":
		h, found := reg[rc.Handler]
		switch {
		case !found:
			p.add(i, name, "handler %q is not registered; known handlers: %s", rc.Handler, known)
		case h == nil:
			p.add(i, name, "handler %q is registered with a nil Handler; fix the registry built in main", rc.Handler)
		default:
			r.Handler = h
		}
	}

	if rc.Shadow != nil || r.Mode == ModeShadow {
		r.Shadow = resolveShadow(i, name, rc.Shadow, p)
	}
	if rc.Canary != nil || r.Mode == ModeCanary {
		r.Canary = resolveCanary(i, name, rc.Canary, r.Mode == ModeCanary, p)
	}
	if rc.Budgets != nil {
		r.Budgets = resolveBudgets(i, name, rc.Budgets, p)
	}
	r.Verdict = resolveVerdict(i, name, rc.Verdict, p)
	if rc.Capture != nil {
		r.Capture = resolveCapture(i, name, rc.Capture, p)
	}
	return r, len(*p) == before
}

// resolveShadow validates s and returns a copy with defaults filled in.
func resolveShadow(i int, name string, s *ShadowConfig, p *problems) *ShadowConfig {
	out := ShadowConfig{}
	if s != nil {
		out = *s
		out.Ignore = slices.Clone(s.Ignore)
	}
	switch out.Primary {
	case "":
		out.Primary = SideLegacy
	case SideLegacy, SidePorted:
	default:
		p.add(i, name, "shadow.primary %q is not valid; use legacy (Go handler is the candidate) or ported (legacy is the candidate)", string(out.Primary))
	}
	if out.SamplePercent == nil {
		v := DefaultShadowSamplePercent
		out.SamplePercent = &v
	} else {
		v := *out.SamplePercent
		out.SamplePercent = &v
		switch {
		case v == 0:
			p.add(i, name, "shadow.sample_percent is 0; use a value above 0 and at most 100 (to stop shadowing, change the mode to legacy or ported)")
		case !(v > 0 && v <= 100):
			p.add(i, name, "shadow.sample_percent %v is out of range; use a value above 0 and at most 100 (unset means 100)", v)
		}
	}
	out.Headers = slices.Clone(out.Headers)
	out.Normalise = slices.Clone(out.Normalise)
	resolveCompare(i, name, &out, p)
	switch {
	case out.Timeout < 0:
		p.add(i, name, "shadow.timeout %s is negative; use a positive duration such as 5s (unset means %s)", out.Timeout, DefaultShadowTimeout)
	case out.Timeout == 0:
		out.Timeout = DefaultShadowTimeout
	}
	return &out
}

// resolveCanary validates c and returns a copy with defaults filled in.
func resolveCanary(i int, name string, c *CanaryConfig, required bool, p *problems) *CanaryConfig {
	out := CanaryConfig{}
	if c != nil {
		out = *c
	}
	switch {
	case out.Percent == nil:
		if required {
			p.add(i, name, "canary.percent is required for mode canary; add e.g. canary: {percent: 5} (0 to 100, steps of 0.1)")
		}
	default:
		v := *out.Percent
		out.Percent = &v
		switch {
		case !(v >= 0 && v <= 100):
			p.add(i, name, "canary.percent %v is out of range; use 0 to 100", v)
		case math.Abs(v*10-math.Round(v*10)) > 1e-6:
			p.add(i, name, "canary.percent %v is finer than 0.1; round it, e.g. %.1f", v, math.Round(v*10)/10)
		}
	}
	if out.Sticky == "" {
		out.Sticky = DefaultSticky
	} else if _, err := ParseSticky(out.Sticky); err != nil {
		p.add(i, name, "canary.%v; use ip, cookie:NAME or header:NAME (e.g. cookie:PHPSESSID)", err)
	}
	switch {
	case out.OverrideHeader != "" && out.OverrideToken == "":
		p.add(i, name, "canary.override_token is required when canary.override_header is set; use at least %d random characters", minOverrideToken)
	case out.OverrideHeader == "" && out.OverrideToken != "":
		p.add(i, name, "canary.override_header is required when canary.override_token is set; e.g. X-Strangler-Canary")
	case out.OverrideHeader != "":
		if !isToken(out.OverrideHeader) {
			p.add(i, name, "canary.override_header %q is not a valid header name; use letters, digits and -, e.g. X-Strangler-Canary", out.OverrideHeader)
		}
		// The token's value is a secret: say how long it is, never what it is.
		if n := len(out.OverrideToken); n < minOverrideToken {
			p.add(i, name, "canary.override_token is too short (%d characters); use at least %d random characters", n, minOverrideToken)
		}
	}
	return &out
}

// parsePath validates a route path and splits it into segments. msg is the
// problem (with its fix) or "".
func parsePath(path string) (pp parsedPath, msg string) {
	switch {
	case path == "":
		return pp, "path is required; e.g. /api/v1/events"
	case path[0] != '/':
		return pp, fmt.Sprintf("path %q must start with \"/\"; use %q", path, "/"+path)
	case strings.ContainsAny(path, "?#"):
		return pp, fmt.Sprintf("path %q must not contain a query or fragment; routes match the path only", path)
	case strings.IndexFunc(path, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0:
		return pp, fmt.Sprintf("path %q must not contain spaces, control characters or invalid UTF-8; paths match after percent-decoding, so write the decoded character", path)
	}
	var canonical strings.Builder
	texts := strings.Split(path[1:], "/")
	segs := make([]pathSeg, 0, len(texts))
	var params []paramRef
	for i, seg := range texts {
		last := i == len(texts)-1
		canonical.WriteByte('/')
		switch {
		case seg == "" && last: // "/" or a trailing slash
			segs = append(segs, pathSeg{kind: segLiteral})
		case seg == "":
			return pp, fmt.Sprintf("path %q has an empty segment (//); request paths are normalised before matching, so it would never match; remove the extra slash", path)
		case seg == "." || seg == "..":
			return pp, fmt.Sprintf("path %q has a %q segment; request paths are normalised before matching, so it would never match; write the path without it", path, seg)
		case seg == "*":
			if !last {
				return pp, fmt.Sprintf("path %q: the catch-all * must be the last segment, e.g. /static/*", path)
			}
			segs = append(segs, pathSeg{kind: segCatchAll})
			params = append(params, paramRef{name: CatchAllParam, seg: i, rest: true})
			canonical.WriteString("*")
		case strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}"):
			name := seg[1 : len(seg)-1]
			if !paramRE.MatchString(name) {
				return pp, fmt.Sprintf("path %q: parameter %s must be a name of letters, digits and _ (not starting with a digit), e.g. {id}", path, seg)
			}
			if slices.ContainsFunc(params, func(p paramRef) bool { return p.name == name }) {
				return pp, fmt.Sprintf("path %q uses parameter {%s} twice; give each parameter its own name", path, name)
			}
			segs = append(segs, pathSeg{kind: segParam, text: name})
			params = append(params, paramRef{name: name, seg: i})
			canonical.WriteString("{}")
		case strings.ContainsAny(seg, "{}*"):
			return pp, fmt.Sprintf("path %q: segment %q mixes text with { } or *; a parameter or * must be a whole segment, e.g. /files/{name} or /static/*", path, seg)
		default:
			segs = append(segs, pathSeg{kind: segLiteral, text: seg})
			canonical.WriteString(seg)
		}
	}
	return parsedPath{segs: segs, params: params, canonical: canonical.String()}, ""
}

// normalizeHost lower-cases h and drops a trailing dot. msg is the problem
// (with its fix) or "".
func normalizeHost(h string) (norm string, msg string) {
	norm = strings.TrimSuffix(strings.ToLower(h), ".")
	switch {
	case strings.Contains(norm, "://") || strings.ContainsAny(norm, "/?#@ \t"):
		return norm, fmt.Sprintf("host %q must be a bare host name such as api.example.com (no scheme, path or user)", h)
	case strings.HasPrefix(norm, "["):
		if hp, _, err := net.SplitHostPort(norm); err == nil {
			return norm, fmt.Sprintf("host %q must not include a port (hosts match on any port); use %q", h, "["+hp+"]")
		}
		a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(norm, "["), "]"))
		if !strings.HasSuffix(norm, "]") || err != nil || !a.Is6() {
			return norm, fmt.Sprintf("host %q is not a valid bracketed IPv6 address such as [::1]", h)
		}
		return norm, ""
	case strings.Contains(norm, ":"):
		if hp, _, err := net.SplitHostPort(norm); err == nil {
			return norm, fmt.Sprintf("host %q must not include a port (hosts match on any port); use %q", h, hp)
		}
		return norm, fmt.Sprintf("host %q: write IPv6 addresses in brackets, e.g. [::1]", h)
	case norm == "" || len(norm) > 253:
		return norm, fmt.Sprintf("host %q is not a valid host name; use e.g. api.example.com, or leave host out for any host", h)
	}
	for _, label := range strings.Split(norm, ".") {
		if !labelRE.MatchString(label) {
			return norm, fmt.Sprintf("host %q is not a valid host name (label %q); use letters, digits and - such as api.example.com", h, label)
		}
	}
	return norm, ""
}

// isToken reports whether s is an RFC 9110 §5.6.2 token (header and cookie
// names).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// suggestName turns an invalid route name into a valid one for the message.
func suggestName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		case b.Len() > 0:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "route_1"
	}
	return b.String()
}
