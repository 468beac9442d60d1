package compare

import (
	"strconv"
	"strings"
)

// Lookup returns the value at path in a JSON body: a string's contents or
// any other value's literal text (an object or array is not a key and
// gives false). path is a rule path below the document (`event_id`,
// `data.id`, `items[0].sku`); "" is invalid.
func Lookup(body []byte, path string) (string, bool) {
	rp, err := parseRulePath(rootBody + "." + path)
	if path == "" || len(body) == 0 || err != nil {
		return "", false
	}
	t := getTape()
	defer putTape(t)
	if t.parse(bytesView(body)) != nil {
		return "", false
	}
	i := int32(0)
	for _, s := range rp.segs {
		nd := &t.nodes[i]
		found := int32(-1)
		n := 0
		for c := i + 1; c < nd.end && found < 0; c, n = t.nodes[c].end, n+1 {
			switch {
			case s.kind == segKey && nd.kind == jObject && t.key(c) == s.key:
				found = c
			case s.kind == segIndex && nd.kind == jArray && n == s.idx:
				found = c
			}
		}
		if found < 0 {
			return "", false
		}
		i = found
	}
	switch t.nodes[i].kind {
	case jString:
		return strings.Clone(t.str(i)), true
	case jObject, jArray:
		return "", false
	}
	return strings.Clone(t.lit(i)), true
}

// ValidKeyPath reports whether path can name a key for Lookup.
func ValidKeyPath(path string) error {
	if path == "" {
		return strconv.ErrSyntax
	}
	rp, err := parseRulePath(rootBody + "." + path)
	if err != nil {
		return err
	}
	for _, s := range rp.segs {
		if s.kind == segAnyKey || s.kind == segAnyIndex {
			return strconv.ErrSyntax
		}
	}
	return nil
}
