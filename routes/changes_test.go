package routes

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// leaf is one configurable field of RouteConfig: its dotted config key
// and the index path that reaches it through blocks (pointers to structs).
type leaf struct {
	key   string
	index []int
}

// leaves walks t (a struct type) the way a config file nests: into
// structs and pointers to structs, every other field a leaf.
func leaves(t reflect.Type, prefix string, index []int) []leaf {
	var out []leaf
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		key := prefix + configKey(f)
		idx := append(slices.Clone(index), i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			out = append(out, leaves(ft, key+".", idx)...)
			continue
		}
		out = append(out, leaf{key, idx})
	}
	return out
}

// field reaches the leaf in v (addressable), allocating blocks on the way.
func field(v reflect.Value, index []int) reflect.Value {
	for _, i := range index {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(i)
	}
	return v
}

// nonZero is a value of t that no decoded config has by default.
func nonZero(t *testing.T, typ reflect.Type) reflect.Value {
	v := reflect.New(typ).Elem()
	switch typ.Kind() {
	case reflect.String:
		v.SetString("x")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	case reflect.Float32, reflect.Float64:
		v.SetFloat(0.5)
	case reflect.Slice:
		v = reflect.MakeSlice(typ, 1, 1)
		v.Index(0).Set(nonZero(t, typ.Elem()))
	case reflect.Pointer:
		v = reflect.New(typ.Elem())
		v.Elem().Set(nonZero(t, typ.Elem()))
	case reflect.Struct:
		for i := range typ.NumField() {
			if typ.Field(i).IsExported() {
				v.Field(i).Set(nonZero(t, typ.Field(i).Type))
			}
		}
	default:
		t.Fatalf("no test value for a %s field; teach nonZero", typ)
	}
	return v
}

// TestChangesNamesEveryRouteField walks every field of RouteConfig by
// reflection, changes it alone, and requires the change list to name it:
// a field added to the schema is in the reload log without anyone
// remembering to add it.
func TestChangesNamesEveryRouteField(t *testing.T) {
	all := leaves(reflect.TypeFor[RouteConfig](), "", nil)
	for _, must := range []string{"methods", "host", "fallback", "shadow.headers", "shadow.normalise", "shadow.ignore_array_order",
		"shadow.numeric_tolerance", "shadow.max_body_bytes", "shadow.legacy_events_file", "shadow.timeout", "canary.override_token",
		"budgets.window", "verdict.target_mismatch_rate", "shadow.accept", "shadow.legacy_events_topic.topic", "shadow.key_path", "capture.percent", "capture.file", "capture.max_bytes"} {
		if !slices.ContainsFunc(all, func(l leaf) bool { return l.key == must }) {
			t.Errorf("the walk did not reach %s", must)
		}
	}
	for _, l := range all {
		if l.key == "name" {
			continue // the key routes are matched by
		}
		t.Run(l.key, func(t *testing.T) {
			// Every block present on both sides, so the leaf is what differs.
			withBlocks := func() RouteConfig {
				r := RouteConfig{Name: "r"}
				for _, o := range all {
					if len(o.index) > 1 {
						field(reflect.ValueOf(&r).Elem(), o.index) // allocates the block
					}
				}
				return r
			}
			base, cur := withBlocks(), withBlocks()
			f := field(reflect.ValueOf(&cur).Elem(), l.index)
			f.Set(nonZero(t, f.Type()))

			got := Changes(Config{Routes: []RouteConfig{base}}, Config{Routes: []RouteConfig{cur}})
			want := "r: updated " + l.key
			switch l.key {
			case "mode":
				want = "r: legacy→x"
			}
			if len(got) != 1 || got[0] != want {
				t.Errorf("changing %s alone: changes = %q, want [%q]", l.key, got, want)
			}
			if strings.Contains(strings.Join(got, " "), "x,") {
				t.Errorf("a value leaked into %q", got)
			}
		})
	}
}

// Every exported field has the mapstructure key it is named by.
func TestRouteFieldsHaveConfigKeys(t *testing.T) {
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Tag.Get("mapstructure") == "" {
				t.Errorf("%s.%s has no mapstructure tag", typ.Name(), f.Name)
			}
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeFor[RouteConfig]())
}

func TestChanges(t *testing.T) {
	pct := func(v float64) *float64 { return &v }
	route := func(mod func(*RouteConfig)) RouteConfig {
		r := RouteConfig{Name: "c", Path: "/c", Mode: ModeCanary, Handler: "h", Canary: &CanaryConfig{Percent: pct(10)}}
		if mod != nil {
			mod(&r)
		}
		return r
	}
	tests := []struct {
		name     string
		old, cur Config
		want     []string
	}{
		{"nothing", Config{Routes: []RouteConfig{route(nil)}}, Config{Routes: []RouteConfig{route(nil)}}, []string{}},
		{"mode", Config{Routes: []RouteConfig{route(nil)}}, Config{Routes: []RouteConfig{route(func(r *RouteConfig) { r.Mode = ModePorted })}},
			[]string{"c: canary 10%→ported"}},
		{"percent is the mode's", Config{Routes: []RouteConfig{route(nil)}},
			Config{Routes: []RouteConfig{route(func(r *RouteConfig) { r.Canary.Percent = pct(20) })}}, []string{"c: canary 10%→canary 20%"}},
		{"percent outside mode canary", Config{Routes: []RouteConfig{route(func(r *RouteConfig) { r.Mode = "" })}},
			Config{Routes: []RouteConfig{route(func(r *RouteConfig) { r.Mode = ModeLegacy; r.Canary.Percent = pct(20) })}},
			[]string{"c: updated canary.percent"}}, // "" and legacy are one mode
		{"mode and fields", Config{Routes: []RouteConfig{route(nil)}}, Config{Routes: []RouteConfig{route(func(r *RouteConfig) {
			r.Mode, r.Fallback = ModePorted, true
			r.Capture = &CaptureConfig{Percent: 1, File: "/tmp/c.jsonl"}
		})}}, []string{"c: canary 10%→ported, updated fallback, capture"}},
		{"a list emptied is the same as absent", Config{Routes: []RouteConfig{route(func(r *RouteConfig) { r.Methods = []string{} })}},
			Config{Routes: []RouteConfig{route(nil)}}, []string{}},
		{"added, removed, kill switch", Config{Routes: []RouteConfig{route(nil), {Name: "gone", Mode: ModeShadow}}},
			Config{AllLegacy: true, Routes: []RouteConfig{{Name: "new"}, route(nil)}},
			[]string{"all_legacy: false→true", "+new (legacy)", "-gone (shadow)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Changes(tt.old, tt.cur)
			if got == nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Changes = %q, want %q", got, tt.want)
			}
		})
	}
}
