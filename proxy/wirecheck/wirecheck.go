// Package wirecheck reads the client's byte stream as fasthttp reads it and
// refuses, at the first offending byte, what HTTP/1.1's message syntax (RFC
// 9112) forbids but fasthttp v1.78 waits on or lets through:
//
//   - a request head whose lines end in a bare LF, or hold a CR that does not
//     end a line. fasthttp only recognises a head by its CRLF CRLF, so a head
//     ended by LF LF was held until server.read_timeout and answered 408;
//   - chunked framing: a chunk-size line that is not hex digits, an optional
//     extension of visible characters and CRLF; chunk data not followed by
//     CRLF (fasthttp reports that one, but its client then writes the chunk
//     and reads on, so "2\r\nxx\n0\r\n\r\n" reached Nginx re-framed);
//   - the trailer section: each field line a token name, a colon, a value
//     without control characters and CRLF, no obs-fold, and its name declared
//     in the request's Trailer field (RFC 9110 §6.5.1). fasthttp parses
//     trailers leniently and the forwarder drops them, so a malformed or
//     undeclared trailer was accepted and silently lost.
//
// A refusal is an *Error from the connection's Read: the bytes before the
// offending one are delivered, and every later Read fails. fasthttp turns
// the error into its parse-error answer for a head, and into a failed body
// read for a body; either way the connection is closed afterwards.
//
// To know where each head starts, the reader follows the framing the way
// the front door accepts it: one Content-Length, or Transfer-Encoding:
// chunked. A head with any other framing (two lengths, length and coding,
// other codings) is refused by the front door's own screen, which closes the
// connection, so the reader just stops checking there. It also stops after
// a head with Upgrade or a CONNECT request: what follows may be another
// protocol. A listener above TLS or PROXY-protocol handling must be the one
// wrapped (the reader must see the plain HTTP/1.1 bytes).
package wirecheck

import (
	"bytes"
	"crypto/tls"
	"net"

	"github.com/strangler-proxy/strangler/internal/ascii"
)

// Error is the reason a connection's byte stream was refused.
type Error struct{ Reason string }

func (e *Error) Error() string { return "request syntax: " + e.Reason }

// Listener wraps each accepted connection in a Conn.
type Listener struct{ net.Listener }

// Accept returns the next connection, checked.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}

// Wrap returns c with its reads checked. A *tls.Conn stays recognisable
// as one (fasthttp's IsTLS looks for ConnectionState and Handshake).
func Wrap(c net.Conn) net.Conn {
	if tc, ok := c.(tlsConn); ok {
		return &tlsCheckedConn{Conn: Conn{Conn: c}, tls: tc}
	}
	return &Conn{Conn: c}
}

type tlsConn interface {
	Handshake() error
	ConnectionState() tls.ConnectionState
}

type tlsCheckedConn struct {
	Conn
	tls tlsConn
}

func (c *tlsCheckedConn) Handshake() error                     { return c.tls.Handshake() }
func (c *tlsCheckedConn) ConnectionState() tls.ConnectionState { return c.tls.ConnectionState() }

// Conn is a connection whose reads are checked. Only one goroutine reads a
// connection at a time (fasthttp's, then a tunnel's), so it needs no lock.
type Conn struct {
	net.Conn
	s Scanner
}

// Read reads from the connection and delivers what passes the check; the
// read that reaches an offending byte delivers the bytes before it, and the
// next one returns the *Error.
func (c *Conn) Read(p []byte) (int, error) {
	if c.s.err != nil {
		return 0, c.s.err
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		ok, serr := c.s.Scan(p[:n])
		if serr != nil {
			if ok == 0 {
				return 0, serr
			}
			return ok, nil // the error comes with the next Read
		}
	}
	return n, err
}

type state uint8

const (
	headLineStart    state = iota // at the start of a head line (or before the request line)
	headLine                      // inside a head line
	body                          // inside a Content-Length body
	chunkSize                     // in a chunk-size line's digits
	chunkExt                      // after the digits, up to the CR
	chunkSizeLF                   // after the chunk-size line's CR
	chunkData                     // inside chunk data
	chunkDataCR                   // after chunk data, expecting CR
	chunkDataLF                   // after chunk data and CR, expecting LF
	trailerLineStart              // at the start of a trailer field line
	trailerLine                   // inside a trailer field line
	off                           // not checking any more
)

// maxLine is how much of a head or trailer line the scanner keeps to read
// the fields it follows. Such a field's line (Content-Length,
// Transfer-Encoding, Trailer, Upgrade) longer than this is refused; other
// lines are not limited here (server.max_header_line_bytes is).
const maxLine = 1024

// maxChunkSize bounds a chunk size far past any body limit, so the count
// cannot overflow.
const maxChunkSize = 1<<60 - 1

// Scanner follows one connection's request stream. The zero value expects
// a request head.
type Scanner struct {
	st      state
	cr      bool // the previous byte was a CR inside a head or trailer line
	err     *Error
	line    []byte // the current line's first bytes, up to maxLine, when keep
	long    bool   // the current line was longer than maxLine
	lineLen int    // the current line's length so far, without its CR
	keep    bool   // the current line may be one the scanner reads

	// The head being read.
	requestLine bool // its request line has been read
	stop        bool // Upgrade or CONNECT: stop after the head
	lengths     int
	codings     int
	length      int64
	chunked     bool
	trailers    [][]byte // declared trailer names, as sent

	left   int64 // bytes left in the body or the chunk; a chunk's size while its line is read
	digits int   // chunk-size digits read
}

// Scan checks p, the next bytes of the stream. It returns len(p) and nil, or
// how many bytes precede the first offending one and the *Error. After an
// error every Scan fails the same way.
func (s *Scanner) Scan(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, reason := s.scan(p)
	if reason != "" {
		s.err = &Error{Reason: reason}
		return n, s.err
	}
	return len(p), nil
}

func (s *Scanner) scan(p []byte) (int, string) {
	i := 0
	for i < len(p) {
		switch s.st {
		case off:
			return len(p), ""
		case headLineStart, headLine, trailerLineStart, trailerLine:
			n, reason := s.line1(p[i:])
			if reason != "" {
				return i + n, reason
			}
			i += n
		case body:
			i += s.skip(p[i:], headLineStart)
		case chunkSize:
			c := p[i]
			switch {
			case ascii.IsHex(c):
				if s.left > maxChunkSize>>4 {
					return i, "chunk size too large"
				}
				s.digits++
				s.left = s.left<<4 | int64(ascii.Unhex(c))
			case s.digits == 0:
				return i, "chunk size is not hex digits"
			case c == ';' || c == ' ' || c == '\t':
				s.st = chunkExt
			case c == '\r':
				s.st = chunkSizeLF
			default:
				return i, "chunk size is not hex digits"
			}
			i++
		case chunkExt:
			// chunk-ext (RFC 9112 §7.1.1) is tokens and quoted strings;
			// the forwarder drops extensions, so only what would break
			// the line is refused: control characters and a bare LF.
			c := p[i]
			if c == '\r' {
				s.st = chunkSizeLF
			} else if c < ' ' && c != '\t' || c == 0x7f {
				return i, "control character in a chunk extension"
			}
			i++
		case chunkSizeLF:
			if p[i] != '\n' {
				return i, "chunk-size line not ended by CRLF"
			}
			i++
			if s.left == 0 {
				s.st = trailerLineStart
			} else {
				s.st = chunkData
			}
		case chunkData:
			i += s.skip(p[i:], chunkDataCR)
		case chunkDataCR:
			if p[i] != '\r' {
				return i, "chunk data not followed by CRLF"
			}
			i++
			s.st = chunkDataLF
		case chunkDataLF:
			if p[i] != '\n' {
				return i, "chunk data not followed by CRLF"
			}
			i++
			s.st, s.digits = chunkSize, 0
		}
	}
	return i, ""
}

// skip passes over up to s.left bytes of p, body or chunk data, and moves to
// next at their end. It returns how many it passed.
func (s *Scanner) skip(p []byte, next state) int {
	n := int(min(s.left, int64(len(p))))
	s.left -= int64(n)
	if s.left == 0 {
		s.st = next
	}
	return n
}

// line1 consumes bytes of a head or trailer line from p, up to and
// including its LF when p holds it. It returns how many bytes it consumed,
// or the offset of the offending byte and the reason.
func (s *Scanner) line1(p []byte) (int, string) {
	trailer := s.st == trailerLineStart || s.st == trailerLine
	if s.st == headLineStart || s.st == trailerLineStart {
		s.line, s.long, s.lineLen = s.line[:0], false, 0
		if s.st == headLineStart {
			s.st = headLine
		} else {
			s.st = trailerLine
		}
	}
	if s.cr {
		// A line's CR was the last byte of the previous read.
		s.cr = false
		if p[0] != '\n' {
			return 0, "CR not followed by LF"
		}
		if reason := s.endLine(); reason != "" {
			return 0, reason
		}
		return 1, ""
	}
	seg := p
	lf := bytes.IndexByte(p, '\n')
	if lf >= 0 {
		seg = p[:lf]
	}
	if cr := bytes.IndexByte(seg, '\r'); cr >= 0 {
		switch {
		case lf >= 0 && cr == lf-1:
			seg = seg[:cr]
		case lf < 0 && cr == len(seg)-1:
			seg = seg[:cr]
			s.cr = true
		default:
			// The offending byte is the one after the CR, as it is when
			// the CR ends a read.
			return cr + 1, "CR not followed by LF"
		}
	} else if lf >= 0 {
		// RFC 9112 §2.2 lets a recipient take a bare LF as a line end; a
		// proxy that does, in front of one that does not, is how requests
		// get smuggled.
		return lf, "line ended by a bare LF"
	}
	if trailer {
		for j, c := range seg {
			if c < ' ' && c != '\t' || c == 0x7f {
				return j, "control character in a trailer field"
			}
		}
	}
	if s.lineLen == 0 && len(seg) > 0 {
		s.keep = trailer || !s.requestLine || follows(seg[0])
	}
	s.lineLen += len(seg)
	if !s.keep {
		// Not a line the scanner reads: only its length matters.
	} else if room := maxLine - len(s.line); len(seg) > room {
		s.line = append(s.line, seg[:room]...)
		s.long = true
	} else {
		s.line = append(s.line, seg...)
	}
	if lf < 0 {
		return len(p), ""
	}
	// A line refused as a whole is refused at its CRLF, which is not
	// delivered: the head or trailer section stays incomplete.
	if reason := s.endLine(); reason != "" {
		return len(seg), reason
	}
	return lf + 1, ""
}

// follows reports whether a head field line starting with c may be one of
// the fields the scanner follows, so that other lines are not copied.
func follows(c byte) bool {
	switch c | 0x20 {
	case 'c', 't', 'u':
		return true
	}
	return false
}

// endLine acts on the line just ended (kept in s.line when s.keep).
func (s *Scanner) endLine() string {
	if s.st == trailerLine {
		return s.endTrailerLine()
	}
	s.st = headLineStart
	line := s.line
	if !s.requestLine {
		if s.lineLen == 0 {
			return "" // RFC 9112 §2.2: empty lines before the request line are ignored
		}
		s.requestLine = true
		s.stop = bytes.HasPrefix(line, []byte("CONNECT "))
		return ""
	}
	if s.lineLen == 0 {
		return s.endHead()
	}
	if !s.keep {
		return ""
	}
	name, value, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return "" // the front door's screen refuses it
	}
	switch {
	case ascii.EqualFold(name, "Content-Length"):
		if s.long {
			return "Content-Length field longer than 1 KiB"
		}
		s.lengths++
		s.length = parseLength(bytes.Trim(value, " \t"))
	case ascii.EqualFold(name, "Transfer-Encoding"):
		if s.long {
			return "Transfer-Encoding field longer than 1 KiB"
		}
		s.codings++
		s.chunked = ascii.EqualFold(bytes.Trim(value, " \t"), "chunked")
	case ascii.EqualFold(name, "Trailer"):
		if s.long {
			return "Trailer field longer than 1 KiB"
		}
		s.addTrailers(value)
	case ascii.EqualFold(name, "Upgrade"):
		s.stop = true
	}
	return ""
}

// parseLength is a Content-Length value's number, or -1 when it is not
// only digits (the screen refuses those).
func parseLength(v []byte) int64 {
	if len(v) == 0 || len(v) > 18 {
		return -1
	}
	n := int64(0)
	for _, c := range v {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}

// addTrailers records the names a Trailer field value declares.
func (s *Scanner) addTrailers(value []byte) {
	for len(value) > 0 {
		var name []byte
		name, value, _ = bytes.Cut(value, []byte{','})
		if name = bytes.Trim(name, " \t"); len(name) > 0 {
			s.trailers = append(s.trailers, append([]byte(nil), name...))
		}
	}
}

// endHead decides, from the head just ended, where the next one starts.
func (s *Scanner) endHead() string {
	lengths, codings, length, chunked, stop := s.lengths, s.codings, s.length, s.chunked, s.stop
	s.requestLine, s.stop, s.lengths, s.codings, s.length, s.chunked = false, false, 0, 0, 0, false
	switch {
	case stop:
		s.st = off
		return ""
	case codings == 1 && lengths == 0 && chunked:
		s.st, s.left, s.digits = chunkSize, 0, 0
		return ""
	case codings > 0 || lengths > 1 || lengths == 1 && length < 0:
		// Framing the screen refuses, closing the connection.
		s.st = off
	case lengths == 1 && length > 0:
		s.st, s.left = body, length
	}
	s.trailers = s.trailers[:0]
	return ""
}

// endTrailerLine checks one trailer field line, or ends the body at the
// empty line.
func (s *Scanner) endTrailerLine() string {
	s.st = trailerLineStart
	line := s.line
	if len(line) == 0 {
		s.st = headLineStart
		s.trailers = s.trailers[:0]
		return ""
	}
	if line[0] == ' ' || line[0] == '\t' {
		return "obs-fold in the trailer section"
	}
	name, _, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		if s.long {
			return "trailer field name longer than 1 KiB"
		}
		return "trailer field line without a name and colon"
	}
	if len(name) == 0 {
		return "trailer field without a name"
	}
	for _, c := range name {
		if !ascii.IsTokenChar(c) {
			return "trailer field name is not a token"
		}
	}
	for _, t := range s.trailers {
		if ascii.EqualFoldBytes(t, name) {
			return ""
		}
	}
	return "trailer field not declared in Trailer"
}
