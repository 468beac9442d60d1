// Package account is the Go twin of the monolith's GET /account
// (legacy_account in examples/monolith/src/legacy.php): the page of the
// user the PHP login put in the session, or a 302 to /login without one.
package account

import (
	"unicode/utf8"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/ported/session"
)

// Name is the handler's name in the route table's `handler:` field.
const Name = "account.get"

// Handler serves the account page. It only reads the session.
type Handler struct {
	sessions *session.Reader
	guarded  session.Guarded
}

// New builds the handler on the monolith's sessions.
func New(sessions *session.Reader) *Handler {
	h := &Handler{sessions: sessions.For(Name)}
	h.guarded = h.sessions.Require(h.page)
	return h
}

// Serve implements the routes' handler shape.
func (h *Handler) Serve(ctx *fasthttp.RequestCtx) error { return h.guarded.Serve(ctx) }

const (
	pageHead = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Account</title>" +
		"<link rel=\"stylesheet\" href=\"/static/app.css\"></head>\n<body>\n<h1>Account</h1>\n" +
		"<p>Logged in as <span id=\"user\">"
	pageTail = "</span>.</p>\n</body></html>\n"
)

// page is legacy_html(200, 'Account', ...) byte for byte. PHP's page needs
// $_SESSION['user'] to be a string (is_string); anything else is the login
// redirect, as for no session.
func (h *Handler) page(ctx *fasthttp.RequestCtx, s *session.Session) error {
	user, ok := s.String("user")
	if !ok {
		h.sessions.LoginRedirect(ctx)
		return nil
	}
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.Response.Header.SetContentType("text/html; charset=utf-8")
	b := make([]byte, 0, len(pageHead)+len(user)+len(pageTail)+16)
	b = append(b, pageHead...)
	b = appendHTMLSpecialChars(b, user)
	b = append(b, pageTail...)
	ctx.Response.SetBodyRaw(b)
	return nil
}

// appendHTMLSpecialChars is PHP 8.1+'s htmlspecialchars default
// (ENT_QUOTES | ENT_SUBSTITUTE | ENT_HTML401, UTF-8): & < > " ' become
// &amp; &lt; &gt; &quot; &#039;, and each invalid UTF-8 sequence, as
// php_next_utf8_char (ext/standard/html.c) delimits it, one U+FFFD.
func appendHTMLSpecialChars(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			n, ok := phpUTF8Char(s[i:])
			if ok {
				b = append(b, s[i:i+n]...)
			} else {
				b = append(b, "\uFFFD"...)
			}
			i += n
			continue
		}
		switch c {
		case '&':
			b = append(b, "&amp;"...)
		case '<':
			b = append(b, "&lt;"...)
		case '>':
			b = append(b, "&gt;"...)
		case '"':
			b = append(b, "&quot;"...)
		case '\'':
			b = append(b, "&#039;"...)
		default:
			b = append(b, c)
		}
		i++
	}
	return b
}

func utf8Lead(c byte) bool  { return c < 0x80 || (c >= 0xc2 && c <= 0xf4) }
func utf8Trail(c byte) bool { return c >= 0x80 && c <= 0xbf }

// phpUTF8Char is php_next_utf8_char for a string starting with a byte >=
// 0x80: how many bytes the character (or the invalid sequence PHP skips as
// one) takes, and whether it is valid.
func phpUTF8Char(s string) (int, bool) {
	c := s[0]
	// bad is PHP's MB_FAILURE length choice: stop before the first byte
	// that could start a character.
	bad := func(need int) (int, bool) {
		for k := 1; k < need; k++ {
			if k >= len(s) || utf8Lead(s[k]) {
				return k, false
			}
		}
		return need, false
	}
	switch {
	case c < 0xc2:
		return 1, false
	case c < 0xe0:
		if len(s) < 2 {
			return 1, false
		}
		if !utf8Trail(s[1]) {
			if utf8Lead(s[1]) {
				return 1, false
			}
			return 2, false
		}
		return 2, true // c >= 0xc2 is never overlong
	case c < 0xf0:
		if len(s) < 3 || !utf8Trail(s[1]) || !utf8Trail(s[2]) {
			return bad(3)
		}
		r := rune(c&0x0f)<<12 | rune(s[1]&0x3f)<<6 | rune(s[2]&0x3f)
		if r < 0x800 || (r >= 0xd800 && r <= 0xdfff) {
			return 3, false
		}
		return 3, true
	case c < 0xf5:
		if len(s) < 4 || !utf8Trail(s[1]) || !utf8Trail(s[2]) || !utf8Trail(s[3]) {
			return bad(4)
		}
		r := rune(c&0x07)<<18 | rune(s[1]&0x3f)<<12 | rune(s[2]&0x3f)<<6 | rune(s[3]&0x3f)
		if r < 0x10000 || r > 0x10ffff {
			return 4, false
		}
		return 4, true
	}
	return 1, false
}
