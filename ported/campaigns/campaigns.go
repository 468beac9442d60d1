// Package campaigns serves the campaign lookups GET /api/v1/campaigns/{id}
// and GET /api/v1/campaigns from the hot cache, with the contract of the PHP
// monolith (examples/monolith/CONTRACT.md, "Campaign lookups"): same
// statuses, same Content-Type, byte-identical JSON bodies.
package campaigns

import (
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/routes"
)

// Names of the handlers in the route registry.
const (
	GetName  = "campaigns.get"
	ListName = "campaigns.list"
)

// List page sizes.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Source gives the campaign set a request reads. *hotcache.Cache satisfies
// it; each request reads one Set so that a page never mixes two snapshots.
type Source interface {
	Set() *campaign.Set
}

const contentType = "application/json"

// ErrNoData is returned while the source holds no campaigns, i.e. the hot
// cache has not loaded yet. The handler has written the contract's answer
// for it, 503 {"error":"unavailable",…} with Retry-After (the PHP side's
// when its file cannot be read), never a 404 a client would believe: the
// front door keeps that answer, or lets the monolith answer instead on a
// route with fallback.
var ErrNoData error = noDataError{}

type noDataError struct{}

func (noDataError) Error() string { return "no campaign data loaded" }

// Answered tells the front door the response is written (proxy.Answered).
func (noDataError) Answered() bool { return true }

// DefaultRetryAfter is the Retry-After of the no-data 503 when the source
// cannot say when it tries again.
const DefaultRetryAfter = 5 * time.Second

// unavailable writes the no-data 503 and returns ErrNoData.
func unavailable(ctx *fasthttp.RequestCtx, src Source, buf *[]byte) error {
	after := DefaultRetryAfter
	if r, ok := src.(interface{ RetryAfter() time.Duration }); ok {
		after = r.RetryAfter()
	}
	ctx.Response.Header.Set("Retry-After", strconv.Itoa(int(math.Ceil(max(after, time.Second).Seconds()))))
	*buf = appendError((*buf)[:0], "unavailable", "campaign data unavailable", "", requestID(ctx))
	write(ctx, fasthttp.StatusServiceUnavailable, *buf)
	return ErrNoData
}

// bufPool recycles response buffers; fasthttp copies the body out.
type bufPool struct{ p sync.Pool }

func (b *bufPool) get() *[]byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return v
	}
	s := make([]byte, 0, 1024)
	return &s
}

func (b *bufPool) put(s *[]byte) {
	if cap(*s) > 256<<10 {
		return // do not keep one huge page's buffer forever
	}
	*s = (*s)[:0]
	b.p.Put(s)
}

// Get answers GET /api/v1/campaigns/{id}: 200 with the campaign, or 404.
// Any id that is not in the set is a 404, malformed or not: ids are opaque
// to clients.
type Get struct {
	src  Source
	now  func() time.Time
	bufs bufPool
}

// NewGet serves lookups by id; now decides the "active" field.
func NewGet(src Source, now func() time.Time) *Get {
	return &Get{src: src, now: now}
}

// Serve implements routes.Handler.
func (g *Get) Serve(ctx *fasthttp.RequestCtx) error {
	buf := g.bufs.get()
	defer g.bufs.put(buf)
	set := g.src.Set()
	if set.Len() == 0 {
		return unavailable(ctx, g.src, buf)
	}
	id := routes.Param(ctx, "id")
	c, ok := set.Campaign(id)
	if !ok {
		*buf = appendError((*buf)[:0], "not_found", "campaign not found", "", requestID(ctx))
		write(ctx, fasthttp.StatusNotFound, *buf)
		return nil
	}
	*buf = appendCampaign((*buf)[:0], c, g.now())
	write(ctx, fasthttp.StatusOK, *buf)
	return nil
}

// List answers GET /api/v1/campaigns?country=&active=&limit=&cursor=.
type List struct {
	src  Source
	now  func() time.Time
	bufs bufPool
}

// NewList serves filtered, paginated lists; now decides "active".
func NewList(src Source, now func() time.Time) *List {
	return &List{src: src, now: now}
}

// Serve implements routes.Handler.
func (l *List) Serve(ctx *fasthttp.RequestCtx) error {
	buf := l.bufs.get()
	defer l.bufs.put(buf)
	q, bad := parseQuery(ctx.URI().QueryString())
	if bad != nil {
		*buf = appendError((*buf)[:0], "bad_request", bad.message, bad.field, requestID(ctx))
		write(ctx, fasthttp.StatusBadRequest, *buf)
		return nil
	}
	set := l.src.Set()
	if set.Len() == 0 {
		return unavailable(ctx, l.src, buf)
	}
	*buf = appendPage((*buf)[:0], set, q, l.now())
	write(ctx, fasthttp.StatusOK, *buf)
	return nil
}

// appendPage appends {"data":[...],"next_cursor":...} for q over set.
func appendPage(b []byte, set *campaign.Set, q query, now time.Time) []byte {
	list := set.Sorted(q.country)
	start := 0
	if q.after != "" {
		// The cursor is the last id served; the next page starts after it
		// even when that campaign has since left the set.
		start = sort.Search(len(list), func(i int) bool { return list[i].ID > q.after })
	}
	b = append(b, `{"data":[`...)
	n := 0
	var last *campaign.Campaign
	more := false
	for _, c := range list[start:] {
		if q.active != activeAny && c.ActiveAt(now) != (q.active == activeTrue) {
			continue
		}
		if n == q.limit {
			more = true
			break
		}
		if n > 0 {
			b = append(b, ',')
		}
		b = appendCampaign(b, c, now)
		last = c
		n++
	}
	b = append(b, `],"next_cursor":`...)
	if !more {
		return append(b, "null}"...)
	}
	b = append(b, '"')
	b = appendCursor(b, last.ID)
	return append(b, `"}`...)
}

func write(ctx *fasthttp.RequestCtx, status int, body []byte) {
	ctx.SetStatusCode(status)
	ctx.SetContentType(contentType)
	ctx.SetBody(body)
}

// requestID returns the X-Request-Id set by the front door when it is safe to
// echo verbatim (the PHP side applies the same rule), else "".
func requestID(ctx *fasthttp.RequestCtx) string {
	v := ctx.Request.Header.Peek("X-Request-Id")
	if len(v) == 0 || len(v) > 128 {
		return ""
	}
	for _, c := range v {
		if !isIDByte(c) {
			return ""
		}
	}
	return string(v)
}

func isIDByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '+' || c == '/' || c == '=' || c == '-'
}
