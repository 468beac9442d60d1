package campaigngen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

func TestGenerateIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := Encode(&a, Generate(500, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if err := Encode(&b, Generate(500, 1, 2)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed, different output")
	}
	var c bytes.Buffer
	if err := Encode(&c, Generate(500, 1, 3)); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("different seed, same output")
	}
}

// The encoded document must round-trip through the model's strict decoder
// and satisfy the invariants the lookups and CONTRACT.md rely on.
func TestGenerateShape(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, Generate(Count, Seed1, Seed2)); err != nil {
		t.Fatal(err)
	}
	f, err := campaign.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Campaigns) != Count {
		t.Fatalf("got %d campaigns", len(f.Campaigns))
	}
	known := map[string]bool{}
	for _, cc := range Countries() {
		known[cc] = true
	}
	statuses := map[string]int{}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	active := 0
	perCountry := map[string]int{}
	for i, c := range f.Campaigns {
		if want := fmt.Sprintf("cmp_%06d", i+1); c.ID != want {
			t.Fatalf("campaign %d: id %q, want %q", i, c.ID, want)
		}
		if len(c.Countries) < 1 || len(c.Countries) > 6 || !slices.IsSorted(c.Countries) {
			t.Fatalf("%s: countries %v", c.ID, c.Countries)
		}
		for j, cc := range c.Countries {
			if !known[cc] || (j > 0 && c.Countries[j-1] == cc) {
				t.Fatalf("%s: countries %v", c.ID, c.Countries)
			}
			perCountry[cc]++
		}
		if !c.EndsAt.After(c.StartsAt) || c.StartsAt.Year() < 2025 || c.EndsAt.Year() > 2028 {
			t.Fatalf("%s: window %v..%v", c.ID, c.StartsAt, c.EndsAt)
		}
		if c.Budget.AmountMinor <= 0 || len(c.Budget.Currency) != 3 {
			t.Fatalf("%s: budget %+v", c.ID, c.Budget)
		}
		statuses[c.Status]++
		if c.ActiveAt(now) {
			active++
		}
	}
	if statuses["active"] < Count/2 || statuses["paused"] == 0 || statuses["ended"] == 0 || len(statuses) != 3 {
		t.Fatalf("statuses %v", statuses)
	}
	if active == 0 || active == Count {
		t.Fatalf("active at %v: %d of %d", now, active, Count)
	}
	if len(perCountry) != len(countries) {
		t.Fatalf("countries used: %d of %d", len(perCountry), len(countries))
	}
}

// Encode must produce what encoding/json (HTML escaping off) produces, line
// by line, including for names no generated campaign has.
func TestEncodeMatchesEncodingJSON(t *testing.T) {
	f := Generate(300, 5, 6)
	tricky := []string{"", "a\"b\\c/d", "<&>", "\x00\x01\b\f\n\r\t\x1f\x7f", "é夏😀", "\u2028\u2029", "bad\xffutf8\xc3"}
	for i, name := range tricky {
		f.Campaigns[i].Name = name
	}
	f.Campaigns[len(tricky)].Countries = nil
	var got bytes.Buffer
	if err := Encode(&got, f); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(got.String(), "\n")
	if len(lines) != len(f.Campaigns)+3 {
		t.Fatalf("%d lines", len(lines))
	}
	head, err := json.Marshal(struct {
		Version     int       `json:"version"`
		GeneratedAt time.Time `json:"generated_at"`
	}{f.Version, f.GeneratedAt})
	if err != nil {
		t.Fatal(err)
	}
	if want := string(head[:len(head)-1]) + `,"campaigns":[`; lines[0] != want {
		t.Fatalf("head %s, want %s", lines[0], want)
	}
	for i := range f.Campaigns {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(&f.Campaigns[i]); err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(buf.String(), "\n")
		if i < len(f.Campaigns)-1 {
			want += ","
		}
		if lines[i+1] != want {
			t.Fatalf("campaign %d:\n got %s\nwant %s", i, lines[i+1], want)
		}
	}
	if tail := strings.Join(lines[len(lines)-2:], "\n"); tail != "]}\n" {
		t.Fatalf("tail %q", tail)
	}
}
