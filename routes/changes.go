package routes

import (
	"fmt"
	"reflect"
	"strings"
)

// Changes lists what differs from old to cur, two decoded route configs,
// in the words of the reload log line:
//
//   - `all_legacy: false→true` for the kill switch;
//   - `+name (mode)` and `-name (mode)` for an added or removed route;
//   - `name: old→new` when a route's mode changed (a canary's mode reads
//     `canary 10%`, so a new percentage is a mode change too);
//   - `name: updated shadow.headers, capture` for any other field that
//     differs, named by its config key; a block present on one side only
//     is named alone. Both parts join as `name: canary 10%→ported, updated
//     fallback`.
//
// Fields are compared one by one by reflection over RouteConfig, so a
// field added to the schema is compared without being listed here. Values
// are never shown (canary.override_token is a secret). The result is never
// nil, so the log shows `[]` for an edit that changed nothing routes read.
func Changes(old, cur Config) []string {
	out := []string{}
	if old.AllLegacy != cur.AllLegacy {
		out = append(out, fmt.Sprintf("all_legacy: %t→%t", old.AllLegacy, cur.AllLegacy))
	}
	before := map[string]*RouteConfig{}
	for i := range old.Routes {
		before[old.Routes[i].Name] = &old.Routes[i]
	}
	seen := map[string]bool{}
	for i := range cur.Routes {
		r := &cur.Routes[i]
		seen[r.Name] = true
		o, ok := before[r.Name]
		if !ok {
			out = append(out, fmt.Sprintf("+%s (%s)", r.Name, configModeLabel(r)))
			continue
		}
		var parts []string
		from, to := configModeLabel(o), configModeLabel(r)
		if from != to {
			parts = append(parts, from+"→"+to)
		}
		var fields []string
		for _, f := range fieldChanges("", reflect.ValueOf(*o), reflect.ValueOf(*r), nil) {
			// The mode label says these already; the name is the key.
			if f == "name" || f == "mode" || (from != to && f == "canary.percent") {
				continue
			}
			fields = append(fields, f)
		}
		if len(fields) > 0 {
			parts = append(parts, "updated "+strings.Join(fields, ", "))
		}
		if len(parts) > 0 {
			out = append(out, r.Name+": "+strings.Join(parts, ", "))
		}
	}
	for i := range old.Routes {
		if r := &old.Routes[i]; !seen[r.Name] {
			out = append(out, fmt.Sprintf("-%s (%s)", r.Name, configModeLabel(r)))
		}
	}
	return out
}

// configModeLabel is a route's mode as the change list shows it.
func configModeLabel(r *RouteConfig) string {
	switch {
	case r.Mode == "":
		return string(ModeLegacy)
	case r.Mode == ModeCanary && r.Canary != nil && r.Canary.Percent != nil:
		return fmt.Sprintf("canary %g%%", *r.Canary.Percent)
	}
	return string(r.Mode)
}

// fieldChanges appends to out the config keys, dotted below prefix, of the
// exported fields that differ between a and b, two values of one struct
// type. It descends into structs and pointers to structs; a pointer set on
// one side only, a slice or any other value is compared whole (empty and
// absent lists are equal: both mean "none").
func fieldChanges(prefix string, a, b reflect.Value, out []string) []string {
	t := a.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue // derived state, such as the compiled comparator
		}
		key := configKey(f)
		fa, fb := a.Field(i), b.Field(i)
		if f.Type.Kind() == reflect.Pointer && f.Type.Elem().Kind() == reflect.Struct {
			switch {
			case fa.IsNil() && fb.IsNil():
			case fa.IsNil() || fb.IsNil():
				out = append(out, prefix+key)
			default:
				out = fieldChanges(prefix+key+".", fa.Elem(), fb.Elem(), out)
			}
			continue
		}
		if f.Type.Kind() == reflect.Struct {
			out = fieldChanges(prefix+key+".", fa, fb, out)
			continue
		}
		if !sameValue(fa, fb) {
			out = append(out, prefix+key)
		}
	}
	return out
}

func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// configKey is the field's key in config.yaml: its mapstructure tag, or
// its name in lower case when it has none.
func configKey(f reflect.StructField) string {
	if k, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ","); k != "" && k != "-" {
		return k
	}
	return strings.ToLower(f.Name)
}
