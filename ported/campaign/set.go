package campaign

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Set is an immutable, validated and indexed collection of campaigns: what
// the hot cache publishes atomically and the lookups read. Build it with
// NewSet; never modify it or the campaigns it points to afterwards.
//
// A nil *Set is an empty set.
type Set struct {
	byID      map[string]*Campaign
	all       []*Campaign            // sorted by id (byte order)
	byCountry map[string][]*Campaign // each sorted by id
}

// Interface guard.
var _ Lookup = (*Set)(nil)

// InvalidError says why a campaign document was refused.
type InvalidError struct {
	Index  int    // position in the document, -1 for the document itself
	ID     string // the campaign's id, when it has one
	Reason string
}

func (e *InvalidError) Error() string {
	if e.Index < 0 {
		return "invalid campaigns: " + e.Reason
	}
	return fmt.Sprintf("invalid campaign #%d %q: %s", e.Index, e.ID, e.Reason)
}

// NewSet validates f and indexes its campaigns. It refuses the whole
// document on the first invalid entry: a half-applied refresh would be worse
// than serving the previous data. The Set keeps pointers into f.Campaigns.
func NewSet(f *File) (*Set, error) {
	if f.Version != 1 {
		return nil, &InvalidError{Index: -1, Reason: fmt.Sprintf("version %d, want 1", f.Version)}
	}
	s := &Set{
		byID:      make(map[string]*Campaign, len(f.Campaigns)),
		all:       make([]*Campaign, len(f.Campaigns)),
		byCountry: make(map[string][]*Campaign),
	}
	for i := range f.Campaigns {
		c := &f.Campaigns[i]
		if reason := invalid(c); reason != "" {
			return nil, &InvalidError{Index: i, ID: c.ID, Reason: reason}
		}
		if _, dup := s.byID[c.ID]; dup {
			return nil, &InvalidError{Index: i, ID: c.ID, Reason: "duplicate id"}
		}
		s.byID[c.ID] = c
		s.all[i] = c
	}
	byID := func(a, b *Campaign) int { return strings.Compare(a.ID, b.ID) }
	if !slices.IsSortedFunc(s.all, byID) {
		slices.SortFunc(s.all, byID)
	}
	// Appending in id order keeps every per-country slice sorted.
	for _, c := range s.all {
		for _, cc := range c.Countries {
			s.byCountry[cc] = append(s.byCountry[cc], c)
		}
	}
	return s, nil
}

// Campaign implements Lookup.
func (s *Set) Campaign(id string) (*Campaign, bool) {
	if s == nil {
		return nil, false
	}
	c, ok := s.byID[id]
	return c, ok
}

// Len is the number of campaigns.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.all)
}

// Sorted returns the campaigns targeting country cc, or all campaigns when cc
// is "", ordered by id. The slice is shared: read it, never modify it.
func (s *Set) Sorted(cc string) []*Campaign {
	if s == nil {
		return nil
	}
	if cc == "" {
		return s.all
	}
	return s.byCountry[cc]
}

// invalid returns why c cannot be served, or "".
func invalid(c *Campaign) string {
	switch {
	case !validID(c.ID):
		return "id must be 1..64 printable ASCII characters without '/'"
	case c.AdvertiserID == "" || !utf8.ValidString(c.AdvertiserID):
		return "advertiser_id must be a non-empty UTF-8 string"
	case !utf8.ValidString(c.Name):
		return "name must be valid UTF-8"
	case c.Status != "active" && c.Status != "paused" && c.Status != "ended":
		return "status must be active, paused or ended"
	case len(c.Countries) == 0:
		return "countries must not be empty"
	case !strictlySorted(c.Countries):
		return "countries must be sorted and unique"
	case !validTime(c.StartsAt) || !validTime(c.EndsAt):
		return "starts_at and ends_at must be whole seconds between years 1970 and 9999"
	case !c.StartsAt.Before(c.EndsAt):
		return "starts_at must be before ends_at"
	case c.Budget.AmountMinor < 0:
		return "budget.amount_minor must not be negative"
	case !upperASCII(c.Budget.Currency, 3):
		return "budget.currency must be an ISO 4217 code"
	}
	for _, cc := range c.Countries {
		if !upperASCII(cc, 2) {
			return "countries must be ISO 3166-1 alpha-2 codes"
		}
	}
	return ""
}

func strictlySorted(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// validID keeps ids addressable as one path segment and printable in logs.
func validID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if b := id[i]; b <= ' ' || b >= 0x7f || b == '/' {
			return false
		}
	}
	return true
}

// validTime accepts what both the Go and the PHP side render identically as
// "YYYY-MM-DDTHH:MM:SSZ".
func validTime(t time.Time) bool {
	return t.Nanosecond() == 0 && t.Year() >= 1970 && t.Year() <= 9999
}

func upperASCII(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}
