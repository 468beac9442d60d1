package shadowreport

import (
	"bytes"
	"cmp"
	"container/heap"
	"slices"
	"sync"
)

// AppendTemplate appends the template of a request path to dst: segments
// that look like identifiers become placeholders so /users/123 and
// /users/456 group as /users/{id}. Placeholders: {id} (digits, or a short
// prefix and digits such as cmp_000123), {uuid}, {hex} (16+ hex digits),
// {date} (YYYY-MM-DD), {token} (20+ letters and digits mixed). Paths
// deeper than maxSegments end in /….
func AppendTemplate(dst, path []byte) []byte {
	if q := bytes.IndexByte(path, '?'); q >= 0 {
		path = path[:q]
	}
	if len(path) == 0 || path[0] != '/' {
		dst = append(dst, '/')
	}
	for n := 0; len(path) > 0; n++ {
		if path[0] == '/' {
			dst = append(dst, '/')
			path = path[1:]
		}
		end := bytes.IndexByte(path, '/')
		if end < 0 {
			end = len(path)
		}
		if n == maxSegments {
			return append(dst, "…"...)
		}
		if ph := placeholder(path[:end]); ph != "" {
			dst = append(dst, ph...)
		} else {
			dst = append(dst, path[:end]...)
		}
		path = path[end:]
	}
	return dst
}

const maxSegments = 12

// placeholder returns the placeholder for an identifier-like segment, ""
// for a literal one.
func placeholder(s []byte) string {
	switch {
	case len(s) == 0:
		return ""
	case allDigits(s):
		return "{id}"
	case isUUID(s):
		return "{uuid}"
	case len(s) >= 16 && allHex(s) && !allLetters(s):
		return "{hex}"
	case isPrefixedID(s):
		return "{id}"
	case isDate(s):
		return "{date}"
	case len(s) >= 20 && isToken(s):
		return "{token}"
	case len(s) > 64:
		return "{long}"
	}
	return ""
}

func allDigits(s []byte) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) > 0
}

func allHex(s []byte) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func allLetters(s []byte) bool {
	for _, c := range s {
		if c >= '0' && c <= '9' {
			return false
		}
	}
	return true
}

func isUUID(s []byte) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// isPrefixedID matches cmp_000123, adv-42, u_7: up to 10 letters, _ or -,
// then digits only.
func isPrefixedID(s []byte) bool {
	i := 0
	for i < len(s) && i < 10 && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= 'A' && s[i] <= 'Z') {
		i++
	}
	if i == 0 || i >= len(s) || (s[i] != '_' && s[i] != '-') {
		return false
	}
	return allDigits(s[i+1:])
}

func isDate(s []byte) bool {
	return len(s) == 10 && s[4] == '-' && s[7] == '-' && allDigits(s[:4]) && allDigits(s[5:7]) && allDigits(s[8:])
}

// isToken: letters, digits, - and _ with at least one letter and two
// digits — random keys, not words-with-dashes slugs.
func isToken(s []byte) bool {
	letters, digits := 0, 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letters++
		case c == '-' || c == '_':
		default:
			return false
		}
	}
	return letters > 0 && digits >= 2
}

// TemplateCount is one unmatched template and how often it was seen.
// Count may over-estimate by at most Error (space-saving algorithm).
type TemplateCount struct {
	Template string `json:"template"` // "GET /users/{id}"
	Count    uint64 `json:"count"`
	Error    uint64 `json:"error,omitempty"`
}

// unmatched keeps the busiest unmatched templates in bounded memory: the
// space-saving algorithm (Metwally et al.) per shard, so that hot-path
// callers on different templates rarely share a lock. A template always
// hashes to the same shard, so the shards' summaries are disjoint and
// merge by concatenation.
type unmatched struct {
	shards [unmatchedShards]ssShard
	bufs   sync.Pool
}

const unmatchedShards = 8

func newUnmatched(capacity int) *unmatched {
	u := &unmatched{bufs: sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}}
	for i := range u.shards {
		u.shards[i].capacity = capacity
		u.shards[i].index = map[string]*ssItem{}
	}
	return u
}

func (u *unmatched) add(method, path []byte) {
	bp := u.bufs.Get().(*[]byte)
	key := append((*bp)[:0], method...)
	key = append(key, ' ')
	key = AppendTemplate(key, path)
	var h uint32 = 2166136261
	for _, c := range key {
		h = (h ^ uint32(c)) * 16777619
	}
	u.shards[h%unmatchedShards].add(key)
	*bp = key
	u.bufs.Put(bp)
}

func (u *unmatched) top(n int) (top []TemplateCount, total uint64) {
	var all []TemplateCount
	for i := range u.shards {
		s := &u.shards[i]
		s.mu.Lock()
		total += s.total
		for _, it := range s.heap {
			all = append(all, TemplateCount{Template: it.key, Count: it.count, Error: it.err})
		}
		s.mu.Unlock()
	}
	slices.SortFunc(all, func(a, b TemplateCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Template, b.Template))
	})
	return all[:min(n, len(all))], total
}

type ssItem struct {
	key        string
	count, err uint64
	pos        int
}

type ssShard struct {
	mu       sync.Mutex
	capacity int
	total    uint64
	index    map[string]*ssItem
	heap     ssHeap // min-heap on count
}

func (s *ssShard) add(key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	if it, ok := s.index[string(key)]; ok {
		it.count++
		heap.Fix(&s.heap, it.pos)
		return
	}
	if len(s.heap) < s.capacity {
		it := &ssItem{key: string(key), count: 1}
		s.index[it.key] = it
		heap.Push(&s.heap, it)
		return
	}
	// Replace the least counted: the newcomer inherits its count as the
	// bound on how much it may be over-estimated.
	it := s.heap[0]
	delete(s.index, it.key)
	it.key, it.err = string(key), it.count
	it.count++
	s.index[it.key] = it
	heap.Fix(&s.heap, 0)
}

type ssHeap []*ssItem

func (h ssHeap) Len() int           { return len(h) }
func (h ssHeap) Less(i, j int) bool { return h[i].count < h[j].count }
func (h ssHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].pos, h[j].pos = i, j
}
func (h *ssHeap) Push(x any) {
	it := x.(*ssItem)
	it.pos = len(*h)
	*h = append(*h, it)
}
func (h *ssHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}
