package layout

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// yamlKey is one key of config.yaml: its value as written (quotes
// removed; "" for a block) and the comment lines just above it.
type yamlKey struct {
	value, comment string
}

var yamlLine = regexp.MustCompile(`^( *)([a-z0-9_]+):(?: +(.*))?$`)

// shippedKeys reads config.yaml's static sections into dotted keys. It is
// no YAML parser: the file is block mappings of scalars, and the routes
// list, the one part that is not, is left out (the routes package tests
// its own schema).
func shippedKeys(t *testing.T, path string) map[string]yamlKey {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]yamlKey{}
	var stack []string // the enclosing keys, one per two spaces of indent
	var comment []string
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "#"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			continue
		case trimmed == "":
			comment = nil
			continue
		}
		m := yamlLine.FindStringSubmatch(line)
		if m == nil {
			comment = nil
			continue // a list item: only under routes
		}
		depth := len(m[1]) / 2
		if depth > 0 && len(stack) > 0 && stack[0] == "routes" {
			continue
		}
		if depth > len(stack) {
			t.Fatalf("config.yaml: %q is indented past its parent", line)
		}
		stack = append(stack[:depth], m[2])
		v := m[3]
		if i := strings.Index(v, " #"); i >= 0 {
			v = v[:i]
		}
		keys[strings.Join(stack, ".")] = yamlKey{value: strings.Trim(strings.TrimSpace(v), `"`), comment: strings.Join(comment, " ")}
		comment = nil
	}
	if len(keys) < 100 {
		t.Fatalf("read only %d keys from config.yaml: the reader is broken", len(keys))
	}
	return keys
}

// A claim is the README naming a key, with the default it states ("" for
// none).
type claim struct{ key, value string }

var (
	referenceRow = regexp.MustCompile("(?m)^\\| (`[^|]*`) \\| `[^`|]*` \\| (.*) \\|$")
	codeSpan     = regexp.MustCompile("`([^`]*)`")
	identifier   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	block        = regexp.MustCompile(`^([a-z][a-z0-9_]*): \{(.*)\}$`)
	// A stated default: a number with an optional unit, a quoted string,
	// [], a boolean, or a bare word such as lz4 or /login.
	literal = regexp.MustCompile(`^(?:-?[0-9][0-9.]*(?:ns|µs|ms|s|m|h| KiB| MiB| GiB| %)?|"[^"]*"|\[\]|true|false|/?[A-Za-z][A-Za-z0-9./_-]*)`)
)

// optionValues are the code spans of the reference that name a key's
// values, not keys.
var optionValues = map[string]bool{"spool": true, "direct": true, "files": true, "redis": true, "memcached": true}

// referenceClaims reads the Config reference table: every key it names in
// the third column, by its section (the first column), with the default
// written after it.
func referenceClaims(t *testing.T) []claim {
	t.Helper()
	section := readmeSection(t, "Config reference")
	var out []claim
	for _, row := range referenceRow.FindAllStringSubmatch(section, -1) {
		sections := codeSpan.FindAllStringSubmatch(row[1], -1)
		if len(sections) != 1 || !strings.HasSuffix(sections[0][1], ":") {
			// listen/admin_listen and all_legacy are top-level keys;
			// routes is the routes package's.
			for _, s := range sections {
				if s[1] != "routes:" {
					out = append(out, claim{key: s[1]})
				}
			}
			continue
		}
		if sections[0][1] == "routes:" {
			continue
		}
		out = append(out, rowClaims(strings.TrimSuffix(sections[0][1], ":"), row[2])...)
	}
	if len(out) < 60 {
		t.Fatalf("read only %d keys from the Config reference: the reader is broken", len(out))
	}
	return out
}

// rowClaims reads one row's text: `key` DEFAULT, `a`/`b` DEFAULT,
// `key` `DEFAULT`, and blocks `name: {k DEFAULT, k: DEFAULT, k}`.
func rowClaims(section, text string) []claim {
	var out []claim
	var pending []string // keys waiting for the default after them
	flush := func(v string) {
		for _, k := range pending {
			out = append(out, claim{key: section + "." + k, value: v})
		}
		pending = nil
	}
	for text != "" {
		loc := codeSpan.FindStringSubmatchIndex(text)
		if loc == nil {
			flush(statedValue(text))
			break
		}
		between, span := text[:loc[0]], text[loc[2]:loc[3]]
		text = text[loc[1]:]
		if len(pending) > 0 {
			switch {
			case strings.TrimSpace(between) == "/" && identifier.MatchString(span):
				pending = append(pending, span)
				continue
			case strings.TrimSpace(between) == "" && !strings.Contains(span, "…"):
				flush(span) // `dir` `var/spool`
				continue
			case strings.TrimSpace(between) == "":
				flush("") // `source` `file://…`: a form, not a default
				continue
			}
			flush(statedValue(between))
		}
		switch m := block.FindStringSubmatch(span); {
		case m != nil:
			for _, item := range strings.Split(m[2], ", ") {
				k, v, _ := strings.Cut(strings.TrimSpace(item), " ")
				k = strings.TrimSuffix(k, ":")
				if strings.ContainsAny(v, `|\…`) {
					v = "" // alternatives, not a default
				}
				out = append(out, claim{key: section + "." + m[1] + "." + k, value: strings.TrimSpace(v)})
			}
		case identifier.MatchString(span) && !optionValues[span] && !strings.HasPrefix(span, "strangler_"):
			pending = append(pending, span)
		}
	}
	return out
}

// statedValue is the default at the start of the text after a key, if any.
func statedValue(s string) string {
	s = strings.TrimLeft(s, " ")
	v := literal.FindString(s)
	if v == "" || len(s) > len(v) && !strings.ContainsRune(" ,;)", rune(s[len(v)])) {
		return "" // prose, not a value
	}
	return v
}

// same reports whether the README's default and config.yaml's value are
// the same setting, however each spells it.
func same(readme, shipped string) bool {
	readme = strings.Trim(readme, `"`)
	if readme == shipped {
		return true
	}
	if a, err := time.ParseDuration(readme); err == nil {
		b, err := time.ParseDuration(shipped)
		return err == nil && a == b
	}
	n, unit, _ := strings.Cut(readme, " ")
	f, err := strconv.ParseFloat(n, 64)
	if err != nil {
		return false
	}
	switch unit {
	case "KiB":
		f *= 1 << 10
	case "MiB":
		f *= 1 << 20
	case "GiB":
		f *= 1 << 30
	case "%":
		f /= 100
	}
	g, err := strconv.ParseFloat(shipped, 64)
	return err == nil && f == g
}

// Every key the README's Config reference names is a key of config.yaml
// (whose keys cmd/strangler decodes with ErrorUnused and checks against
// the packages' defaults), and every default it states is the one
// config.yaml spells out, or the one config.yaml's comment gives its zero
// ("0 = 262144").
func TestReadmeConfigReferenceMatchesConfigYAML(t *testing.T) {
	shipped := shippedKeys(t, filepath.Join("..", "..", "config.yaml"))
	for _, c := range referenceClaims(t) {
		y, ok := shipped[c.key]
		switch {
		case !ok:
			t.Errorf("the Config reference names %s, which config.yaml does not have", c.key)
		case c.value == "" || same(c.value, y.value):
		case (y.value == "0" || y.value == "") && strings.Contains(y.comment, fmt.Sprintf("%s = %s", y.value, strings.Trim(c.value, `"`))):
		default:
			t.Errorf("the Config reference says %s defaults to %s; config.yaml has %q", c.key, c.value, y.value)
		}
	}
}

func TestReferenceReaderReadsTheShapes(t *testing.T) {
	got := rowClaims("s", "`a` 30s (→ 504), `b`/`c` 60s (gaps), `d` `var/x`, `e` (prose), `f: {g 5, h: [], i}`, "+
		"`j` 1.5 GiB, `k` `spool` (default) or `direct`, `l` 10 %, `m` \"\" (off), `n` lz4")
	want := []claim{{"s.a", "30s"}, {"s.b", "60s"}, {"s.c", "60s"}, {"s.d", "var/x"}, {"s.e", ""},
		{"s.f.g", "5"}, {"s.f.h", "[]"}, {"s.f.i", ""}, {"s.j", "1.5 GiB"}, {"s.k", "spool"}, {"s.l", "10 %"},
		{"s.m", `""`}, {"s.n", "lz4"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rowClaims:\n got %v\nwant %v", got, want)
	}
	for _, tt := range []struct {
		readme, shipped string
		same            bool
	}{
		{"1.5 GiB", "1610612736", true}, {"1 MiB", "1048576", true}, {"10 %", "0.1", true}, {"1m", "60s", true},
		{"0", "0s", true}, {`"1.2"`, "1.2", true}, {"30s", "60s", false}, {"256 MiB", "268435456", true}, {"5", "6", false},
	} {
		if got := same(tt.readme, tt.shipped); got != tt.same {
			t.Errorf("same(%q, %q) = %t", tt.readme, tt.shipped, got)
		}
	}
}
