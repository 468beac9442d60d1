package shadowreport

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/routes"
)

// StoreConfig bounds the store of differing paths.
type StoreConfig struct {
	// Groups is how many differing path templates are kept. When full, a
	// new path replaces the least seen and inherits its count as an error
	// bound (the space-saving algorithm): every path seen more often than
	// 1/Groups of all mismatches is guaranteed a place, and a count is
	// never under its true value nor over it by more than Error. Zero: 50.
	Groups int `mapstructure:"groups"`
	// Examples is how many recent full examples each group keeps. Zero: 3.
	Examples int `mapstructure:"examples"`
	// MaxBody cuts each example body, after redaction. Zero: 8 KiB.
	MaxBody int `mapstructure:"max_body"`
}

// Defaults of StoreConfig.
const (
	DefaultStoreGroups   = 50
	DefaultStoreExamples = 3
	DefaultStoreMaxBody  = 8 << 10
)

func (c StoreConfig) withDefaults() StoreConfig {
	if c.Groups <= 0 {
		c.Groups = DefaultStoreGroups
	}
	if c.Examples <= 0 {
		c.Examples = DefaultStoreExamples
	}
	if c.MaxBody <= 0 {
		c.MaxBody = DefaultStoreMaxBody
	}
	return c
}

// ResponseView is one side of an example, redacted.
type ResponseView struct {
	Side    routes.Side `json:"side"`
	Status  int         `json:"status"`
	Headers [][2]string `json:"headers"`
	Body    string      `json:"body"`
}

// Example is one mismatching comparison, side by side.
type Example struct {
	Time time.Time `json:"time"`
	Request
	// Diffs of the comparison, noise included and flagged, at most
	// maxExampleDiffs.
	Diffs     []compare.Diff `json:"diffs"`
	Primary   ResponseView   `json:"primary"`
	Candidate ResponseView   `json:"candidate"`
}

const maxExampleDiffs = 20

func newExample(c Comparison, now time.Time, maxBody int) *Example {
	candidate := routes.SidePorted
	if c.PrimarySide == routes.SidePorted {
		candidate = routes.SideLegacy
	}
	view := func(side routes.Side, r compare.Response) ResponseView {
		ct := r.ContentType
		if ct == "" {
			for _, kv := range r.Header {
				if strings.EqualFold(kv[0], "Content-Type") {
					ct = kv[1]
					break
				}
			}
		}
		headers := compare.RedactHeaders(r.Header)
		for i := range headers { // they may view the caller's buffers
			headers[i] = [2]string{strings.Clone(headers[i][0]), strings.Clone(headers[i][1])}
		}
		return ResponseView{Side: side, Status: r.Status, Headers: headers, Body: compare.RedactBody(r.Body, ct, maxBody)}
	}
	return &Example{
		Time: now, Request: c.Request,
		Diffs:     slices.Clone(c.Result.Diffs[:min(len(c.Result.Diffs), maxExampleDiffs)]),
		Primary:   view(c.PrimarySide, c.Primary),
		Candidate: view(candidate, c.Candidate),
	}
}

// Group is every recent mismatch at one path template.
type Group struct {
	Template string `json:"template"`
	// Count of mismatches at Template, over-estimated by at most Error
	// (see StoreConfig.Groups).
	Count uint64                  `json:"count"`
	Error uint64                  `json:"error,omitempty"`
	Kinds map[compare.Kind]uint64 `json:"kinds"`
	First time.Time               `json:"first"`
	Last  time.Time               `json:"last"`
	// Examples, newest last.
	Examples []*Example `json:"examples"`
}

type mismatchStore struct {
	cfg     StoreConfig
	groups  map[string]*Group
	evicted uint64
}

func newMismatchStore(c StoreConfig) mismatchStore {
	return mismatchStore{cfg: c.withDefaults(), groups: map[string]*Group{}}
}

// add files ex under every template among diffs (the real, non-noise
// differences of one comparison).
func (s *mismatchStore) add(diffs []compare.Diff, ex *Example, now time.Time) {
	for i, d := range diffs {
		if slices.ContainsFunc(diffs[:i], func(o compare.Diff) bool { return o.Template == d.Template }) {
			g := s.groups[d.Template]
			if g != nil {
				g.Kinds[d.Kind]++
			}
			continue
		}
		g := s.groups[d.Template]
		if g == nil {
			// A Diff's template shares one allocation with its
			// renderings: the group keeps a copy of the template alone.
			tpl := strings.Clone(d.Template)
			g = &Group{Template: tpl, Kinds: map[compare.Kind]uint64{}, First: now}
			if len(s.groups) >= s.cfg.Groups {
				g.Count = s.evict()
				g.Error = g.Count
			}
			s.groups[tpl] = g
		}
		g.Count++
		g.Kinds[d.Kind]++
		g.Last = now
		if len(g.Examples) >= s.cfg.Examples {
			copy(g.Examples, g.Examples[1:])
			g.Examples = g.Examples[:len(g.Examples)-1]
		}
		g.Examples = append(g.Examples, ex)
	}
}

// evict drops the least seen group, the oldest among equals, and returns
// its count.
func (s *mismatchStore) evict() uint64 {
	var victim *Group
	for _, g := range s.groups {
		if victim == nil || g.Count < victim.Count || g.Count == victim.Count && g.Last.Before(victim.Last) {
			victim = g
		}
	}
	delete(s.groups, victim.Template)
	s.evicted++
	return victim.Count
}

// top returns copies of the groups, most seen first.
func (s *mismatchStore) top() []Group {
	out := make([]Group, 0, len(s.groups))
	for _, g := range s.groups {
		c := *g
		c.Kinds = make(map[compare.Kind]uint64, len(g.Kinds))
		for k, v := range g.Kinds {
			c.Kinds[k] = v
		}
		c.Examples = slices.Clone(g.Examples) // Examples are immutable once stored
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Group) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Template, b.Template))
	})
	return out
}
