package campaign

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func valid(id string, countries ...string) Campaign {
	return Campaign{
		ID: id, AdvertiserID: "adv_0001", Name: "n", Status: "active", Countries: countries,
		StartsAt: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), EndsAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		Budget: Budget{AmountMinor: 100, Currency: "EUR"},
	}
}

func TestNewSetIndexes(t *testing.T) {
	f := &File{Version: 1, Campaigns: []Campaign{
		valid("cmp_3", "DE", "FR"), valid("cmp_1", "FR"), valid("cmp_2", "DE", "US"),
	}}
	s, err := NewSet(f)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(cs []*Campaign) string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return strings.Join(out, ",")
	}
	tests := []struct{ country, want string }{
		{"", "cmp_1,cmp_2,cmp_3"}, {"DE", "cmp_2,cmp_3"}, {"FR", "cmp_1,cmp_3"}, {"US", "cmp_2"}, {"JP", ""},
	}
	for _, tt := range tests {
		if got := ids(s.Sorted(tt.country)); got != tt.want {
			t.Errorf("Sorted(%q) = %s, want %s", tt.country, got, tt.want)
		}
	}
	if c, ok := s.Campaign("cmp_2"); !ok || c != &f.Campaigns[2] {
		t.Fatal("lookup does not point into the document")
	}
	if _, ok := s.Campaign("cmp_4"); ok || s.Len() != 3 {
		t.Fatal("lookup or Len wrong")
	}
	var nilSet *Set
	if _, ok := nilSet.Campaign("x"); ok || nilSet.Len() != 0 || nilSet.Sorted("") != nil {
		t.Fatal("nil set is not empty")
	}
}

func TestNewSetRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(c *Campaign)
		want   string
	}{
		{"empty id", func(c *Campaign) { c.ID = "" }, "id must"},
		{"slash in id", func(c *Campaign) { c.ID = "a/b" }, "id must"},
		{"space in id", func(c *Campaign) { c.ID = "a b" }, "id must"},
		{"long id", func(c *Campaign) { c.ID = strings.Repeat("a", 65) }, "id must"},
		{"no advertiser", func(c *Campaign) { c.AdvertiserID = "" }, "advertiser_id"},
		{"bad name", func(c *Campaign) { c.Name = "\xff" }, "name"},
		{"status", func(c *Campaign) { c.Status = "running" }, "status"},
		{"no countries", func(c *Campaign) { c.Countries = nil }, "countries must not be empty"},
		{"unsorted countries", func(c *Campaign) { c.Countries = []string{"FR", "DE"} }, "sorted"},
		{"repeated country", func(c *Campaign) { c.Countries = []string{"DE", "DE"} }, "unique"},
		{"lower-case country", func(c *Campaign) { c.Countries = []string{"de"} }, "alpha-2"},
		{"empty window", func(c *Campaign) { c.EndsAt = c.StartsAt }, "before"},
		{"reversed window", func(c *Campaign) { c.EndsAt = c.StartsAt.Add(-time.Hour) }, "before"},
		{"fractional second", func(c *Campaign) { c.StartsAt = c.StartsAt.Add(time.Millisecond) }, "whole seconds"},
		{"zero time", func(c *Campaign) { c.StartsAt = time.Time{} }, "whole seconds"},
		{"negative budget", func(c *Campaign) { c.Budget.AmountMinor = -1 }, "amount_minor"},
		{"currency", func(c *Campaign) { c.Budget.Currency = "eur" }, "currency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &File{Version: 1, Campaigns: []Campaign{valid("cmp_1", "DE"), valid("cmp_2", "DE")}}
			tt.mutate(&f.Campaigns[1])
			_, err := NewSet(f)
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Index != 1 || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want InvalidError #1 mentioning %q", err, tt.want)
			}
		})
	}
	t.Run("duplicate", func(t *testing.T) {
		_, err := NewSet(&File{Version: 1, Campaigns: []Campaign{valid("a", "DE"), valid("b", "DE"), valid("a", "FR")}})
		if err == nil || !strings.Contains(err.Error(), "duplicate") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("version", func(t *testing.T) {
		if _, err := NewSet(&File{Version: 2}); err == nil {
			t.Fatal("version 2 accepted")
		}
	})
}

func TestNewSetLeavesCountriesAlone(t *testing.T) {
	f := &File{Version: 1, Campaigns: []Campaign{valid("a", "DE", "FR", "US")}}
	if _, err := NewSet(f); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Campaigns[0].Countries, []string{"DE", "FR", "US"}) {
		t.Fatalf("countries modified: %v", f.Campaigns[0].Countries)
	}
}

func TestUnmarshal(t *testing.T) {
	good := `{"version":1,"generated_at":"2025-01-01T00:00:00Z","campaigns":[{"id":"cmp_1","advertiser_id":"a","name":"é","status":"active","countries":["DE"],"starts_at":"2025-01-01T00:00:00Z","ends_at":"2026-01-01T00:00:00+01:00","budget":{"amount_minor":5,"currency":"EUR"}}]}`
	f, err := Unmarshal([]byte(good + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Campaigns[0]
	if c.ID != "cmp_1" || c.Name != "é" || c.Budget.AmountMinor != 5 || !c.EndsAt.Equal(time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC)) {
		t.Fatalf("decoded %+v", c)
	}
	// Decode and Unmarshal agree on a valid document.
	g, err := Decode(strings.NewReader(good))
	if err != nil || g.Campaigns[0].Name != c.Name || !g.Campaigns[0].EndsAt.Equal(c.EndsAt) {
		t.Fatalf("Decode: %v %+v", err, g)
	}
	for name, bad := range map[string]string{
		"truncated":     good[:len(good)/2],
		"trailing data": good + "{}",
		"unknown field": strings.Replace(good, `"name"`, `"title":1,"name"`, 1),
		"duplicate key": strings.Replace(good, `"name":"é"`, `"name":"é","name":"x"`, 1),
		"wrong type":    strings.Replace(good, `"amount_minor":5`, `"amount_minor":"5"`, 1),
		"bad time":      strings.Replace(good, `2025-01-01T00:00:00Z","ends`, `yesterday","ends`, 1),
		"invalid utf8":  strings.Replace(good, "é", "\xff", 1),
		"empty":         "",
	} {
		if _, err := Unmarshal([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
