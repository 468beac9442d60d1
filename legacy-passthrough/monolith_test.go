package legacy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/strangler-proxy/strangler/internal/monolith"
	"github.com/strangler-proxy/strangler/internal/monolith/monolithtest"
)

// TestAgainstMonolith sends the same raw requests to the sample monolith's
// Nginx directly and through the forwarder, and compares what PHP saw and
// what the client got. The only differences allowed are the proxy's
// X-Forwarded-* fields, Date, and the hop-by-hop Connection field.
func TestAgainstMonolith(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 2})
	fwd, _ := newTestForwarder(t, testConfig(strings.TrimPrefix(m.URL, "http://")))
	fr := startFront(t, fwd, nil)
	direct, proxied := dial(t, strings.TrimPrefix(m.URL, "http://")), dial(t, fr.addr)

	tests := []struct {
		name     string
		request  string
		bodiless bool
		// same compares the two bodies; nil means byte equality.
		same func(t *testing.T, direct, proxied []byte)
	}{
		{
			name: "what PHP receives",
			request: "GET /headers?x=%2F&y=1&y=2&empty= HTTP/1.1\r\n" +
				"Host: shop.example\r\n" +
				"x-CuStOm: one\r\n" +
				"X-Dup: first\r\n" +
				"Cookie: a=1; b=2\r\n" +
				"X-Other: o\r\n" +
				"X-Dup: second\r\n" +
				"cookie: c=3\r\n" +
				"X-Empty: \r\n" +
				"User-Agent: fidelity/1\r\n\r\n",
			same: samePHPView,
		},
		{
			name:    "POST body",
			request: "POST /headers HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\":[1,2,3]}",
			same:    samePHPView,
		},
		{
			name:    "chunked PUT body",
			request: "PUT /headers HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n",
			same:    samePHPView,
		},
		{name: "redirect", request: "GET /account HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "login sets two cookies", request: "POST /login HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 24\r\n\r\nuser=ann&password=secret",
			same: func(*testing.T, []byte, []byte) {}},
		{name: "304", request: "GET /status/304 HTTP/1.1\r\nHost: h\r\n\r\n", bodiless: true},
		{name: "204", request: "GET /status/204 HTTP/1.1\r\nHost: h\r\n\r\n", bodiless: true},
		{name: "HEAD", request: "HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", bodiless: true},
		{name: "418", request: "GET /status/418 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "static file", request: "GET /static/hello.txt HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "download", request: "GET /download/2 HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "not found", request: "GET /no/such/thing?q=%zz HTTP/1.1\r\nHost: h\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dHead, dBody := direct.do(t, tt.request, tt.bodiless)
			pHead, pBody := proxied.do(t, tt.request, tt.bodiless)
			if err := fr.lastErr(t); err != nil {
				t.Fatalf("Serve: %v", err)
			}
			d, p := headFields(dHead), headFields(pHead)
			if strings.Count(d[0], " ") == 1 {
				// Nginx sends no reason for codes it has no text for (418);
				// fasthttp cannot write an empty one and writes the standard
				// text. Clients ignore it (RFC 9112 §4).
				p[0] = strings.Join(strings.Fields(p[0])[:2], " ")
			}
			if !slices.Equal(d, p) {
				t.Errorf("response heads differ\n direct: %q\nproxied: %q", d, p)
			}
			if tt.same != nil {
				tt.same(t, dBody, pBody)
			} else if !bytes.Equal(dBody, pBody) {
				t.Errorf("bodies differ\n direct: %.200q\nproxied: %.200q", dBody, pBody)
			}
		})
	}
}

// headFields is a response head without what may differ: Date's value,
// Connection and Keep-Alive (hop-by-hop), Set-Cookie's session id; names in
// lower case (fasthttp writes a few canonically) and sorted, since fasthttp
// writes some fields first.
func headFields(head string) []string {
	lines := strings.Split(strings.TrimSuffix(head, "\r\n\r\n"), "\r\n")
	var out []string
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		switch strings.ToLower(k) {
		case "date":
			v = "<date>"
		case "connection", "keep-alive":
			continue
		case "set-cookie":
			if strings.HasPrefix(strings.TrimSpace(v), "PHPSESSID=") {
				v = "PHPSESSID=<id>"
			}
		}
		out = append(out, strings.ToLower(k)+":"+strings.TrimSpace(v))
	}
	// By name only: fields of one name stay in their order.
	slices.SortStableFunc(out, func(a, b string) int {
		ka, _, _ := strings.Cut(a, ":")
		kb, _, _ := strings.Cut(b, ":")
		return strings.Compare(ka, kb)
	})
	return append([]string{lines[0]}, out...)
}

// phpView is legacy_headers' answer.
type phpView struct {
	Method      string            `json:"method"`
	RequestURI  string            `json:"request_uri"`
	QueryString string            `json:"query_string"`
	Protocol    string            `json:"server_protocol"`
	HTTPHost    *string           `json:"http_host"`
	ContentType *string           `json:"content_type"`
	ContentLen  *string           `json:"content_length"`
	Headers     []phpHeader       `json:"headers"`
	Cookie      *string           `json:"cookie"`
	Cookies     map[string]string `json:"cookies"`
	BodyLength  int               `json:"body_length"`
	BodySHA256  string            `json:"body_sha256"`
}

type phpHeader struct{ Name, Value string }

// samePHPView: PHP saw the same request, apart from the X-Forwarded-* the
// proxy adds, whose values it checks.
func samePHPView(t *testing.T, direct, proxied []byte) {
	t.Helper()
	var d, p phpView
	if err := json.Unmarshal(direct, &d); err != nil {
		t.Fatalf("direct: %v in %q", err, direct)
	}
	if err := json.Unmarshal(proxied, &p); err != nil {
		t.Fatalf("proxied: %v in %q", err, proxied)
	}
	var rest []phpHeader
	got := map[string]string{}
	for _, h := range p.Headers {
		if strings.HasPrefix(h.Name, "HTTP_X_FORWARDED_") {
			got[h.Name] = h.Value
			continue
		}
		rest = append(rest, h)
	}
	p.Headers = rest
	host := "h"
	if d.HTTPHost != nil {
		host = *d.HTTPHost
	}
	want := map[string]string{"HTTP_X_FORWARDED_FOR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "http", "HTTP_X_FORWARDED_HOST": host}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("X-Forwarded-* as PHP saw them: %v, want %v", got, want)
	}
	dj, _ := json.Marshal(d)
	pj, _ := json.Marshal(p)
	if !bytes.Equal(dj, pj) {
		t.Errorf("PHP saw different requests\n direct: %s\nproxied: %s", dj, pj)
	}
}

// TestMonolithBigTransfers: a multipart upload and a download through the
// forwarder to PHP, checked by their SHA-256.
func TestMonolithBigTransfers(t *testing.T) {
	m := monolithtest.Start(t, monolith.Options{Workers: 2})
	fwd, _ := newTestForwarder(t, testConfig(strings.TrimPrefix(m.URL, "http://")))
	fr := startFront(t, fwd, nil)
	cl := dial(t, fr.addr)

	const size = 16 << 20
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, err := mw.CreateFormFile("file", "blob.bin")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(fw, sum), &pattern{}, size); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	head, body := cl.do(t, "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Type: "+mw.FormDataContentType()+
		"\r\nContent-Length: "+strconv.Itoa(form.Len())+"\r\n\r\n"+form.String(), false)
	want := fmt.Sprintf(`{"size":%d,"sha256":"%s"}`, size, hex.EncodeToString(sum.Sum(nil)))
	if status(t, head) != 200 || string(body) != want {
		t.Fatalf("upload: %q %q, want %s", head, body, want)
	}

	const mb = 32
	head, body = cl.do(t, fmt.Sprintf("GET /download/%d HTTP/1.1\r\nHost: h\r\n\r\n", mb), false)
	block := make([]byte, 0, 64<<10)
	for i := range 2048 {
		d := sha256.Sum256([]byte("strangler-download:" + strconv.Itoa(i)))
		block = append(block, d[:]...)
	}
	if status(t, head) != 200 || !bytes.Equal(body, bytes.Repeat(block, mb*16)) {
		t.Fatalf("download: %q, %d bytes, not the documented pattern", head, len(body))
	}
}
