package proxy

import (
	crand "crypto/rand"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"
)

// HeaderRequestID carries the request id: kept from the client when sane,
// generated otherwise, forwarded upstream and echoed on the response.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDLen bounds a client-supplied id, so a client cannot make every
// log line and error body of its requests arbitrarily large.
const maxRequestIDLen = 128

// validRequestID reports whether a client-supplied id may be kept: 1..128
// bytes of [A-Za-z0-9._:-], which covers UUIDs, hex ids and the
// "service:host:n" shapes load balancers send, and nothing that could break
// a log line or a header.
func validRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > maxRequestIDLen {
		return false
	}
	for _, c := range id {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// idSource makes request ids: 16 bytes from a ChaCha8 stream, hex encoded.
// Each generator is seeded from crypto/rand and lives in a sync.Pool, so ids
// are unpredictable and unique in practice while concurrent requests never
// share a lock (math/rand/v2 generators are not safe for concurrent use).
type idSource struct {
	pool sync.Pool
}

func newIDSource() *idSource {
	s := &idSource{}
	s.pool.New = func() any {
		var seed [32]byte
		_, _ = crand.Read(seed[:]) // never fails since Go 1.24 (it crashes instead)
		return rand.NewChaCha8(seed)
	}
	return s
}

// next appends a fresh 32-character id to dst.
func (s *idSource) next(dst []byte) []byte {
	g := s.pool.Get().(*rand.ChaCha8)
	var raw [16]byte
	_, _ = g.Read(raw[:]) // ChaCha8.Read never fails
	s.pool.Put(g)
	var out [32]byte
	hex.Encode(out[:], raw[:])
	return append(dst, out[:]...)
}

// assign settles the request id of the request in h and appends it to dst.
// A single sane X-Request-Id from the client is kept as it came (name case
// included); otherwise every copy is dropped and a fresh id is set, so the
// upstream sees exactly one. Header names are matched case-insensitively
// because the server keeps them as the client wrote them.
func (s *idSource) assign(h *fasthttp.RequestHeader, dst []byte) []byte {
	var (
		found []byte
		n     int
	)
	for k, v := range h.All() {
		if isRequestIDHeader(k) {
			found = v
			n++
		}
	}
	if n == 1 && validRequestID(found) {
		return append(dst, found...)
	}
	if n > 0 {
		dropRequestIDs(h)
	}
	start := len(dst)
	dst = s.next(dst)
	h.SetBytesV(HeaderRequestID, dst[start:])
	return dst
}

func isRequestIDHeader(name []byte) bool {
	return len(name) == len(HeaderRequestID) && strings.EqualFold(string(name), HeaderRequestID)
}

// dropRequestIDs deletes X-Request-Id in every spelling present in h. It is
// off the common path (only for a bad or repeated id), so it may allocate.
func dropRequestIDs(h *fasthttp.RequestHeader) {
	var names []string
	for k := range h.All() {
		if isRequestIDHeader(k) {
			names = append(names, string(k))
		}
	}
	for _, k := range names {
		h.Del(k)
	}
}
