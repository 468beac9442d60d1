package compare

import (
	"slices"
	"strings"
)

// diffHeaders compares the configured headers. A header repeated on one
// side is compared as the list of its values.
func (c *Comparator) diffHeaders(w *walker, p, q [][2]string) {
	for i := range c.headers {
		key := c.headerKeys[i]
		pv, pok := collect(p, key)
		qv, qok := collect(q, key)
		if !pok && !qok {
			continue
		}
		path := c.headerPaths[i]
		switch {
		case !qok:
			w.emitRaw(path, path, KindMissing, c.showHeader(key, pv), "")
			continue
		case !pok:
			w.emitRaw(path, path, KindExtra, "", c.showHeader(key, qv))
			continue
		case pv == qv && len(c.headerNorms[key]) == 0 && key != "set-cookie":
			continue
		}
		np, nq := c.normaliseHeader(key, pv), c.normaliseHeader(key, qv)
		switch {
		case np != nq:
			w.emitRaw(path, path, KindValue, showHeaderValue(key, np), showHeaderValue(key, nq))
		case key == "set-cookie" || len(c.headerNorms[key]) > 0:
			// Cookie values are per session, and a normalise rule says
			// what is the same: only the normalised forms count.
		case strings.TrimSpace(pv) != strings.TrimSpace(qv):
			// The same meaning spelled otherwise (RFC 9110 makes media
			// types and list order lenient; clients are not always).
			kind := KindFormat
			if strings.EqualFold(pv, qv) {
				kind = KindCase
			}
			w.emitRaw(path, path, kind, showHeaderValue(key, pv), showHeaderValue(key, qv))
		}
	}
}

// collect returns the values of header key (lower-case) in h, joined with
// "\n" when repeated.
func collect(h [][2]string, key string) (string, bool) {
	var out string
	found := false
	for _, kv := range h {
		if len(kv[0]) != len(key) || !strings.EqualFold(kv[0], key) {
			continue
		}
		if found {
			out += "\n" + kv[1]
		} else {
			out, found = kv[1], true
		}
	}
	return out, found
}

func (c *Comparator) showHeader(key, v string) string {
	return showHeaderValue(key, c.normaliseHeader(key, v))
}

func showHeaderValue(key, v string) string {
	switch {
	case key == "location": // a reset or login link may carry a token
		v = RedactURI(v)
	case secretHeader(key) && key != "set-cookie": // cookie values are already gone
		return Redacted
	}
	return excerpt(strings.ReplaceAll(v, "\n", " | "))
}

// Header values whose elements form a set: order and case carry no
// meaning (RFC 9110 §12.5.5 Vary, §10.2.1 Allow, RFC 9111 §5.2 directives).
var setHeaders = map[string]bool{"vary": true, "allow": true, "cache-control": true}

// normaliseHeader removes differences that carry no meaning, then applies
// the route's normalise rules.
func (c *Comparator) normaliseHeader(key, v string) string {
	switch {
	case key == "set-cookie":
		v = normaliseSetCookies(v)
	case key == "content-type":
		// Media types and charset values are case-insensitive
		// (RFC 9110 §8.3.1); whitespace around ; and = is optional.
		v = strings.Map(func(r rune) rune {
			if r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, strings.ToLower(v))
	case setHeaders[key]:
		parts := splitList(strings.ToLower(v))
		slices.Sort(parts)
		v = strings.Join(parts, ", ")
	case key == "content-encoding":
		v = strings.Join(splitList(strings.ToLower(v)), ", ")
	default:
		v = strings.TrimSpace(v)
	}
	for _, r := range c.headerNorms[key] {
		v = r.apply(v)
	}
	return v
}

func splitList(v string) []string {
	var out []string
	for _, line := range strings.Split(v, "\n") {
		for _, p := range strings.Split(line, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// normaliseSetCookies keeps each cookie's name and attributes and drops
// its value (per session) and its Expires date (derived from the clock;
// Max-Age carries the same intent and is kept). Cookies and attributes
// are sorted: their order carries no meaning.
func normaliseSetCookies(v string) string {
	cookies := strings.Split(v, "\n")
	for i, ck := range cookies {
		parts := strings.Split(ck, ";")
		name, _, _ := strings.Cut(parts[0], "=")
		attrs := make([]string, 0, len(parts)-1)
		for _, a := range parts[1:] {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			an, av, hasValue := strings.Cut(a, "=")
			an = strings.ToLower(strings.TrimSpace(an))
			switch {
			case an == "expires":
				a = an
			case hasValue:
				a = an + "=" + strings.TrimSpace(av)
			default:
				a = an
			}
			attrs = append(attrs, a)
		}
		slices.Sort(attrs)
		cookies[i] = strings.Join(append([]string{strings.TrimSpace(name)}, attrs...), "; ")
	}
	slices.Sort(cookies)
	return strings.Join(cookies, "\n")
}
