package routes

import (
	"strings"
	"unsafe"

	"github.com/valyala/fasthttp"
)

// segKind is what one segment of a route path matches.
type segKind uint8

const (
	segLiteral  segKind = iota // its text exactly ("" for a trailing slash)
	segParam                   // any non-empty segment
	segCatchAll                // the rest of the path, from this segment on
)

// pathSeg is one segment of a parsed route path: the text between two
// slashes, or after the last one.
type pathSeg struct {
	kind segKind
	text string // the literal, or the parameter's name
}

// paramRef says where a route's parameter is in a matching request path:
// the seg-th segment (0 is the first after the leading slash), or with rest
// everything from that segment on.
type paramRef struct {
	name string
	seg  int
	rest bool
}

// node is a position in a path trie, reached by matching whole segments.
// Routes of the same shape share nodes whatever their parameters are
// called: each Route keeps its own names.
type node struct {
	literals []edge
	// index finds a literal edge when there are many; nil when few.
	index    map[string]*node
	param    *node
	route    *Route // the route whose path ends here
	catchAll *Route // the route whose path continues with /* here
}

type edge struct {
	seg  string
	next *node
}

// manyLiterals is where a map beats comparing strings one by one.
const manyLiterals = 8

// find returns the route matching rest, a request path after a slash that
// ended this node's segments. At each segment a literal beats a parameter,
// which beats a catch-all; when the more specific branch has no route for
// the rest of the path, the next is tried.
func (n *node) find(rest string) *Route {
	seg, tail, more := strings.Cut(rest, "/")
	if next := n.literal(seg); next != nil {
		if r := next.at(tail, more); r != nil {
			return r
		}
	}
	if n.param != nil && seg != "" {
		if r := n.param.at(tail, more); r != nil {
			return r
		}
	}
	return n.catchAll
}

// at returns the route for a request path whose segment just matched n:
// n's own route when it was the last segment, else the match for tail.
func (n *node) at(tail string, more bool) *Route {
	if !more {
		return n.route
	}
	return n.find(tail)
}

func (n *node) literal(seg string) *node {
	if n.index != nil {
		return n.index[seg]
	}
	for i := range n.literals {
		if n.literals[i].seg == seg {
			return n.literals[i].next
		}
	}
	return nil
}

// add registers r below n. It returns the route already holding r's place
// (and changes no route's place), or nil.
func (n *node) add(r *Route) *Route {
	for _, s := range r.segs {
		switch s.kind {
		case segCatchAll:
			if n.catchAll != nil {
				return n.catchAll
			}
			n.catchAll = r
			return nil
		case segParam:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		default:
			next := n.literal(s.text)
			if next == nil {
				next = &node{}
				n.literals = append(n.literals, edge{s.text, next})
				switch {
				case n.index != nil:
					n.index[s.text] = next
				case len(n.literals) > manyLiterals:
					n.index = make(map[string]*node, len(n.literals))
					for _, e := range n.literals {
						n.index[e.seg] = e.next
					}
				}
			}
			n = next
		}
	}
	if n.route != nil {
		return n.route
	}
	n.route = r
	return nil
}

// paramsKey is the ctx user value key under which Match records a route
// with parameters. A pointer in an interface is not boxed, so recording
// allocates nothing once the request's user value slice has room (fasthttp
// keeps it across the requests of a pooled ctx). A route without
// parameters is not recorded: the exact paths pay nothing for Param.
type paramsKey struct{}

// Params is what Param needs of the route a request matched: where its
// parameters are in the path. It holds no request bytes, so it outlives
// the request; the zero Params has no parameters.
type Params struct{ r *Route }

// ParamsOf returns the Params Match recorded in ctx.
func ParamsOf(ctx *fasthttp.RequestCtx) Params {
	r, _ := ctx.UserValue(paramsKey{}).(*Route)
	return Params{r}
}

// SetParams records p in ctx as Match does, so that Param reads p's
// parameters from ctx's path. It is for a ctx carrying a copy of the
// request p was taken from: a shadow candidate's.
func SetParams(ctx *fasthttp.RequestCtx, p Params) {
	if p.r == nil {
		ctx.RemoveUserValue(paramsKey{})
		return
	}
	ctx.SetUserValue(paramsKey{}, p.r)
}

// Param returns the value of path parameter name of the route Match found
// for ctx (CatchAllParam for what a trailing `*` matched), percent-decoded;
// "" when no route matched or its path has no such parameter. The value is
// read from ctx's request path and shares its memory: it is valid until
// the handler returns, so copy it (strings.Clone) to keep it longer.
func Param(ctx *fasthttp.RequestCtx, name string) string {
	r, _ := ctx.UserValue(paramsKey{}).(*Route)
	if r == nil {
		return ""
	}
	for _, p := range r.params {
		if p.name == name {
			return segmentOf(requestPath(ctx), p)
		}
	}
	return ""
}

// requestPath views ctx's decoded, normalised path as a string ("/" when
// empty), without copying: it is valid while the request is.
func requestPath(ctx *fasthttp.RequestCtx) string {
	p := ctx.Path()
	if len(p) == 0 {
		return "/"
	}
	return unsafe.String(unsafe.SliceData(p), len(p))
}

// segmentOf cuts p's value out of path, a path its route matched. A byte
// loop: paths are short, and a call per segment costs more than the scan.
func segmentOf(path string, p paramRef) string {
	i := 1 // after the leading slash
	for n := 0; n < p.seg; i++ {
		if i >= len(path) {
			return ""
		}
		if path[i] == '/' {
			n++
		}
	}
	if p.rest {
		return path[i:]
	}
	end := i
	for end < len(path) && path[end] != '/' {
		end++
	}
	return path[i:end]
}
