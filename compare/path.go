package compare

import (
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
)

// Path roots.
const (
	rootStatus = "status"
	rootHeader = "header"
	rootBody   = "body"
	// RootPublished names what a side published for the request (its
	// Kafka message), compared like a body.
	RootPublished = "published"
)

type segKind uint8

const (
	segKey      segKind = iota // .name or ["name"]
	segAnyKey                  // .*
	segIndex                   // [3]
	segAnyIndex                // [*]
)

// seg is one step of a body path below `body`.
type seg struct {
	kind segKind
	key  string
	idx  int
}

// rulePath is a parsed Ignore, Normalise or Accept path.
type rulePath struct {
	root   string // rootStatus, rootHeader, rootBody or RootPublished
	header string // canonical header name when root is rootHeader
	segs   []seg  // steps below body (or published)
}

// parseRulePath parses `status`, `header.Name`, or `body` or `published`
// followed by `.key`, `.*`, `["quoted key"]`, `[3]` or `[*]` steps.
func parseRulePath(p string) (rulePath, error) {
	root := rootBody
	switch {
	case p == rootStatus:
		return rulePath{root: rootStatus}, nil
	case strings.HasPrefix(p, rootHeader+"."):
		name := p[len(rootHeader)+1:]
		if !isToken(name) {
			return rulePath{}, fmt.Errorf("header name %q is not a valid token", name)
		}
		return rulePath{root: rootHeader, header: textproto.CanonicalMIMEHeaderKey(name)}, nil
	case p == rootBody || strings.HasPrefix(p, rootBody+".") || strings.HasPrefix(p, rootBody+"["):
	case p == RootPublished || strings.HasPrefix(p, RootPublished+".") || strings.HasPrefix(p, RootPublished+"["):
		root = RootPublished
	default:
		return rulePath{}, fmt.Errorf("must be status, header.<Name>, body[.<json path>] or published[.<json path>]")
	}
	rp := rulePath{root: root}
	s := p[len(root):]
	for s != "" {
		switch s[0] {
		case '.':
			s = s[1:]
			end := strings.IndexAny(s, ".[")
			if end < 0 {
				end = len(s)
			}
			key := s[:end]
			s = s[end:]
			switch {
			case key == "":
				return rulePath{}, fmt.Errorf("empty key (write body.a.b, or body[\"a.b\"] for keys with dots)")
			case key == "*":
				rp.segs = append(rp.segs, seg{kind: segAnyKey})
			case strings.ContainsRune(key, ']'):
				return rulePath{}, fmt.Errorf("unexpected ] in key %q", key)
			default:
				rp.segs = append(rp.segs, seg{kind: segKey, key: key})
			}
		case '[':
			end := closingBracket(s)
			if end < 0 {
				return rulePath{}, fmt.Errorf("unclosed [")
			}
			inner := s[1:end]
			s = s[end+1:]
			switch {
			case inner == "*":
				rp.segs = append(rp.segs, seg{kind: segAnyIndex})
			case strings.HasPrefix(inner, `"`):
				key, err := strconv.Unquote(inner)
				if err != nil {
					return rulePath{}, fmt.Errorf("bad quoted key %s: %w", inner, err)
				}
				rp.segs = append(rp.segs, seg{kind: segKey, key: key})
			default:
				n, err := strconv.Atoi(inner)
				if err != nil || n < 0 {
					return rulePath{}, fmt.Errorf("index [%s] must be a number, * or a quoted key", inner)
				}
				rp.segs = append(rp.segs, seg{kind: segIndex, idx: n})
			}
		default:
			return rulePath{}, fmt.Errorf("expected . or [ at %q", s)
		}
	}
	return rp, nil
}

// closingBracket returns the index of the ] closing s[0] == '[', skipping a
// quoted key, or -1.
func closingBracket(s string) int {
	inQuote := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == ']':
			return i
		}
	}
	return -1
}

// appendKey appends the path step for object key k: `.k` for plain keys,
// `["k"]` otherwise, so every rendered path parses back.
func appendKey(b []byte, k string) []byte {
	if plainKey(k) {
		b = append(b, '.')
		return append(b, k...)
	}
	b = append(b, '[')
	b = strconv.AppendQuote(b, k)
	return append(b, ']')
}

func plainKey(k string) bool {
	if k == "" || k == "*" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '$' || c == '@') {
			return false
		}
	}
	return true
}

// isToken reports whether s is an RFC 9110 token (a valid header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

// matches reports whether the rule path r names the concrete path d (as
// rendered in a Diff) or a value above it. `*` matches any key, [*] any
// index.
func (r rulePath) matches(d rulePath) bool {
	if r.root != d.root || r.header != d.header || len(r.segs) > len(d.segs) {
		return false
	}
	for i, s := range r.segs {
		o := d.segs[i]
		switch s.kind {
		case segKey:
			if o.kind != segKey || o.key != s.key {
				return false
			}
		case segAnyKey:
			if o.kind != segKey {
				return false
			}
		case segIndex:
			if o.kind != segIndex || o.idx != s.idx {
				return false
			}
		case segAnyIndex:
			if o.kind != segIndex && o.kind != segAnyIndex {
				return false
			}
		}
	}
	return true
}

// pathKeys calls fn with every object key named in a rendered path
// (`body.a["b.c"][2].d` → a, b.c, d) until fn returns true.
func pathKeys(p string, fn func(string) bool) bool {
	rp, err := parseRulePath(p)
	if err != nil {
		return false
	}
	if rp.root == rootHeader {
		return fn(rp.header)
	}
	for _, s := range rp.segs {
		if s.kind == segKey && fn(s.key) {
			return true
		}
	}
	return false
}
