package account

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/strangler-proxy/strangler/ported/session"
)

// TestHTMLSpecialCharsMatchesPHP: the escaping of the user name is PHP's,
// checked against php's own htmlspecialchars on awkward names.
func TestHTMLSpecialCharsMatchesPHP(t *testing.T) {
	names := []string{"alice", `<b>"O'Brien" & co</b>`, "ünïcødé ✓", "bad\xffutf8\xc3", "\xed\xa0\x80surrogate", "\xf0\x9f\x98\x80 emoji", "tab\tand\x00nul",
		"\xc3", "\xc3(", "\xe2\x82", "\xe2\x82(", "\xe2(\xa1", "\xf0\x9f\x98", "\xf0\x9f(\x80", "\xf4\x90\x80\x80", "\xe0\x80\x80", "\xc0\xaf", "\x80\x80", "\xf8\x88\x80\x80\x80"}
	php, err := exec.LookPath("php")
	if err != nil {
		t.Fatal("php CLI not found: install with `sudo apt-get install -y php8.2-cli` (or `make deps`)")
	}
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, php, "-n", "-r", `echo htmlspecialchars(stream_get_contents(STDIN));`)
		cmd.Stdin = strings.NewReader(name)
		want, err := cmd.Output()
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if got := appendHTMLSpecialChars(nil, name); string(got) != string(want) {
			t.Errorf("%q: got %q, PHP %q", name, got, want)
		}
	}
}

func TestAccount(t *testing.T) {
	dir := t.TempDir()
	r, err := session.New(session.Options{Config: session.Config{Backend: "files", SavePath: dir}})
	if err != nil {
		t.Fatal(err)
	}
	h := New(r)
	write := func(id, data string) {
		if err := os.WriteFile(filepath.Join(dir, "sess_"+id), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("aaaaaaaaaaaaaaaaaaaaaaaaaa", `user|s:7:"<alice>";`)
	write("bbbbbbbbbbbbbbbbbbbbbbbbbb", `user|i:5;`)
	tests := []struct {
		cookie string
		status int
		body   string
	}{
		{"PHPSESSID=aaaaaaaaaaaaaaaaaaaaaaaaaa", 200, pageHead + "&lt;alice&gt;" + pageTail},
		{"PHPSESSID=bbbbbbbbbbbbbbbbbbbbbbbbbb", 302, ""},
		{"", 302, ""},
	}
	for _, tt := range tests {
		var ctx fasthttp.RequestCtx
		raw := "GET /account HTTP/1.1\r\nHost: x\r\n"
		if tt.cookie != "" {
			raw += "Cookie: " + tt.cookie + "\r\n"
		}
		if err := ctx.Request.Read(bufio.NewReader(strings.NewReader(raw + "\r\n"))); err != nil {
			t.Fatal(err)
		}
		if err := h.Serve(&ctx); err != nil {
			t.Fatal(err)
		}
		if ctx.Response.StatusCode() != tt.status || string(ctx.Response.Body()) != tt.body {
			t.Errorf("%q: %d %q", tt.cookie, ctx.Response.StatusCode(), ctx.Response.Body())
		}
		if tt.status == 302 && string(ctx.Response.Header.Peek("Location")) != "/login" {
			t.Errorf("%q: Location %q", tt.cookie, ctx.Response.Header.Peek("Location"))
		}
	}
}
