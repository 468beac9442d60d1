package compare

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
)

// DefaultHeaders are compared when Rules.Headers is empty: the headers
// whose difference changes what a client or cache does. Date, Server,
// X-Powered-By and the like differ between PHP and Go by nature and are
// left out. Set-Cookie is compared by cookie name and attributes only: its
// values are per session.
var defaultHeaders = [...]string{
	"Content-Type", "Location", "Cache-Control", "Set-Cookie",
	"Content-Encoding", "Vary", "Allow", "Retry-After",
}

// DefaultHeaders returns a copy of the header names compared by default.
func DefaultHeaders() []string { return append([]string(nil), defaultHeaders[:]...) }

// DefaultMaxDiffs bounds the differences one comparison reports.
const DefaultMaxDiffs = 100

// Rules say what a route's comparison looks at. The zero value compares the
// status, DefaultHeaders and the whole body exactly (array order matters).
type Rules struct {
	// Headers compared, case-insensitive. Empty: DefaultHeaders. To drop
	// one default header, keep the defaults and Ignore `header.<Name>`.
	Headers []string `mapstructure:"headers"`
	// Ignore lists parts left out of the comparison: `status`,
	// `header.<Name>`, `body` (the whole body) or a JSON path below it:
	// `body.event_id`, `body.items[*].sku`, `body.items[0]`, `body.prices.*`,
	// `body["key.with.dots"]`. A path ignores everything below it.
	Ignore []string `mapstructure:"ignore"`
	// Normalise rewrites values on both sides before they are compared.
	Normalise []Replace `mapstructure:"normalise"`
	// IgnoreArrayOrder compares JSON arrays as multisets. Zero value
	// (false): order matters, and a pure reordering is reported once at the
	// array's path with kind order.
	IgnoreArrayOrder bool `mapstructure:"ignore_array_order"`
	// NumericTolerance is the largest absolute difference under which two
	// JSON numbers are equal (0.005 accepts 1.234 against 1.23). Zero:
	// numbers must be equal as decimals (1.0 equals 1, 1.23 is not 1.230001).
	NumericTolerance float64 `mapstructure:"numeric_tolerance"`
	// MaxDiffs bounds the differences one comparison reports; the rest are
	// counted in Result.Dropped. Zero: DefaultMaxDiffs.
	MaxDiffs int `mapstructure:"max_diffs"`
	// Accept lists differences a person has looked at and accepted: they
	// are still found and shown, marked with the reason, and count as
	// explained. Empty: none (every difference counts).
	Accept []Accept `mapstructure:"accept"`
}

// Accept is one accepted difference: of Kind, at Path (`status`,
// `header.<Name>`, `body…` or `published…` as in Ignore; `*` and [*]
// match any key and index; a path covers everything below it), for
// Reason, which the report shows next to it.
type Accept struct {
	Path   string `mapstructure:"path" json:"path"`
	Kind   Kind   `mapstructure:"kind" json:"kind"`
	Reason string `mapstructure:"reason" json:"reason"`
}

// Replace is one normalise rule: every match of Regex in the values at Path
// is replaced by With (which may use $1-style group references) on both
// sides. Path is `header.<Name>` (a compared header's value), `body` (a
// text body, or every JSON string in a JSON body) or a JSON path below body
// (every JSON string at or below it).
type Replace struct {
	Path  string `mapstructure:"path"`
	Regex string `mapstructure:"regex"`
	With  string `mapstructure:"with"`
}

// Comparator compares responses under one route's compiled Rules. It is
// immutable and safe for concurrent use.
type Comparator struct {
	headers      []string // canonical names, in configured order
	headerKeys   []string // lower-case, same order
	headerPaths  []string // header.<Name>, same order
	headerNorms  map[string][]*replacer
	ignoreStatus bool
	ignoreBody   bool
	textNorms    []*replacer // `body` rules, for text bodies
	body         *ruleNode   // nil when no body rule exists
	unordered    bool
	tolerance    float64
	maxDiffs     int
	accepts      []acceptRule
	fingerprint  string
}

type acceptRule struct {
	Accept
	path rulePath
}

type replacer struct {
	re   *regexp.Regexp
	with string
}

func (r *replacer) apply(s string) string { return r.re.ReplaceAllString(s, r.with) }

// ruleNode is a trie of body rules keyed by path step.
type ruleNode struct {
	keys   map[string]*ruleNode
	anyKey *ruleNode
	idx    map[int]*ruleNode
	anyIdx *ruleNode
	ignore bool
	norms  []*replacer
}

func (n *ruleNode) child(s seg) *ruleNode {
	get := func(p **ruleNode) *ruleNode {
		if *p == nil {
			*p = &ruleNode{}
		}
		return *p
	}
	switch s.kind {
	case segAnyKey:
		return get(&n.anyKey)
	case segAnyIndex:
		return get(&n.anyIdx)
	case segIndex:
		if n.idx == nil {
			n.idx = map[int]*ruleNode{}
		}
		c := n.idx[s.idx]
		if c == nil {
			c = &ruleNode{}
			n.idx[s.idx] = c
		}
		return c
	default:
		if n.keys == nil {
			n.keys = map[string]*ruleNode{}
		}
		c := n.keys[s.key]
		if c == nil {
			c = &ruleNode{}
			n.keys[s.key] = c
		}
		return c
	}
}

// Compile validates r and builds its Comparator. Every problem is
// reported, each naming the rule.
func Compile(r Rules) (*Comparator, error) {
	var errs []error
	c := &Comparator{
		headerNorms: map[string][]*replacer{},
		unordered:   r.IgnoreArrayOrder,
		tolerance:   r.NumericTolerance,
		maxDiffs:    r.MaxDiffs,
	}
	if c.maxDiffs == 0 {
		c.maxDiffs = DefaultMaxDiffs
	}
	if c.maxDiffs < 0 {
		errs = append(errs, fmt.Errorf("max_diffs %d is negative; use a positive bound or 0 for %d", r.MaxDiffs, DefaultMaxDiffs))
	}
	if !(r.NumericTolerance >= 0) { // also refuses NaN
		errs = append(errs, fmt.Errorf("numeric_tolerance %v must be 0 or positive", r.NumericTolerance))
	}

	names := r.Headers
	if len(names) == 0 {
		names = defaultHeaders[:]
	}
	ignoredHeaders := map[string]bool{}
	for i, ig := range r.Ignore {
		rp, err := parseRulePath(ig)
		if err != nil {
			errs = append(errs, fmt.Errorf("ignore[%d] %q: %w", i, ig, err))
			continue
		}
		switch rp.root {
		case RootPublished:
			errs = append(errs, fmt.Errorf("ignore[%d] %q: published messages are compared whole; accept a difference there instead", i, ig))
		case rootStatus:
			c.ignoreStatus = true
		case rootHeader:
			ignoredHeaders[strings.ToLower(rp.header)] = true
		case rootBody:
			if len(rp.segs) == 0 {
				c.ignoreBody = true
				continue
			}
			if c.body == nil {
				c.body = &ruleNode{}
			}
			n := c.body
			for _, s := range rp.segs {
				n = n.child(s)
			}
			n.ignore = true
		}
	}
	for i, h := range names {
		if !isToken(h) {
			errs = append(errs, fmt.Errorf("headers[%d] %q is not a valid header name", i, h))
			continue
		}
		canon := textproto.CanonicalMIMEHeaderKey(h)
		key := strings.ToLower(canon)
		if ignoredHeaders[key] || contains(c.headerKeys, key) {
			continue
		}
		c.headers = append(c.headers, canon)
		c.headerKeys = append(c.headerKeys, key)
		c.headerPaths = append(c.headerPaths, rootHeader+"."+canon)
	}
	for i, n := range r.Normalise {
		where := fmt.Sprintf("normalise[%d] %q", i, n.Path)
		rp, err := parseRulePath(n.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if n.Regex == "" {
			errs = append(errs, fmt.Errorf("%s: regex is required", where))
			continue
		}
		re, err := regexp.Compile(n.Regex)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: regex: %w", where, err))
			continue
		}
		rep := &replacer{re: re, with: n.With}
		switch rp.root {
		case RootPublished:
			errs = append(errs, fmt.Errorf("%s: published messages are compared whole; accept a difference there instead", where))
		case rootStatus:
			errs = append(errs, fmt.Errorf("%s: the status cannot be normalised; ignore it instead", where))
		case rootHeader:
			key := strings.ToLower(rp.header)
			if !contains(c.headerKeys, key) {
				errs = append(errs, fmt.Errorf("%s: header %s is not compared; add it to headers", where, rp.header))
				continue
			}
			c.headerNorms[key] = append(c.headerNorms[key], rep)
		case rootBody:
			if len(rp.segs) == 0 {
				c.textNorms = append(c.textNorms, rep)
			}
			if c.body == nil {
				c.body = &ruleNode{}
			}
			node := c.body
			for _, s := range rp.segs {
				node = node.child(s)
			}
			node.norms = append(node.norms, rep)
		}
	}
	for i, a := range r.Accept {
		where := fmt.Sprintf("accept[%d] %q", i, a.Path)
		rp, err := parseRulePath(a.Path)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		case !slices.Contains(Kinds(), a.Kind):
			errs = append(errs, fmt.Errorf("%s: kind %q is not one of %s", where, a.Kind, kindList()))
		case strings.TrimSpace(a.Reason) == "":
			errs = append(errs, fmt.Errorf("%s: reason is required: say why this %s difference is fine (it is shown on the report)", where, a.Kind))
		default:
			c.accepts = append(c.accepts, acceptRule{Accept: a, path: rp})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("compare rules: %w", err)
	}
	c.fingerprint = r.Fingerprint()
	return c, nil
}

func kindList() string {
	var s []string
	for _, k := range Kinds() {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Fingerprint identifies the rules: equal rules have equal fingerprints,
// and any change to them gives another, which starts a new comparison
// epoch on the report.
func (r Rules) Fingerprint() string {
	b, _ := json.Marshal(r) // plain data: never fails
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// Fingerprint returns the fingerprint of the rules c was compiled from.
func (c *Comparator) Fingerprint() string { return c.fingerprint }

// Accepts returns the accept rules, in configured order.
func (c *Comparator) Accepts() []Accept {
	out := make([]Accept, len(c.accepts))
	for i, a := range c.accepts {
		out[i] = a.Accept
	}
	return out
}

// accept marks the differences of r that an accept rule names.
func (c *Comparator) accept(r *Result) {
	if len(c.accepts) == 0 {
		return
	}
	for i := range r.Diffs {
		c.AcceptDiff(&r.Diffs[i])
	}
}

// AcceptDiff marks d Accepted when an accept rule names it; it reports
// whether one does. A difference explained as noise is left as it is.
func (c *Comparator) AcceptDiff(d *Diff) bool {
	if d.Noise || len(c.accepts) == 0 {
		return false
	}
	dp, err := parseRulePath(d.Path)
	if err != nil {
		return false
	}
	for _, a := range c.accepts {
		if a.Kind == d.Kind && a.path.matches(dp) {
			d.Accepted = a.Reason
			return true
		}
	}
	return false
}

// MustCompile is Compile for rules known to be valid (tests, literals).
func MustCompile(r Rules) *Comparator {
	c, err := Compile(r)
	if err != nil {
		panic(err)
	}
	return c
}

// Headers returns the canonical names of the headers c compares.
func (c *Comparator) Headers() []string { return append([]string(nil), c.headers...) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
