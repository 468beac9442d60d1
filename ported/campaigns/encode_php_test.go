package campaigns

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/strangler-proxy/strangler/ported/phpjson"
)

// The hand-written string encoder must agree byte for byte with PHP's
// json_encode(JSON_UNESCAPED_SLASHES|JSON_UNESCAPED_UNICODE), which the
// monolith uses. The PHP CLI encodes the same corpus.
func TestAppendStringMatchesPHP(t *testing.T) {
	php, err := exec.LookPath("php")
	if err != nil {
		t.Fatal("php CLI not found: install it with `apt-get install php8.2-cli` (or `make deps`)")
	}
	corpus := []string{
		"", "plain", `quote " backslash \ slash / amp & lt < gt > apos '`,
		"\b\f\n\r\t\x00\x01\x1f\x7f", "é 夏祭り 😀", "\u2028\u2029", "\u2027\u202a", "\ufeff\u00a0",
		"<script>alert(1)</script>", "Fish & Chips",
	}
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []rune("ab\"\\/\b\f\n\r\t\x00\x1f\x7f<>&'é夏😀\u2028\u2029\u00ff\u0800\uffff")
	for range 300 {
		var sb strings.Builder
		for range r.IntN(12) {
			sb.WriteRune(alphabet[r.IntN(len(alphabet))])
		}
		corpus = append(corpus, sb.String())
	}
	var in bytes.Buffer
	for _, s := range corpus {
		if !utf8.ValidString(s) {
			t.Fatalf("corpus entry %q is not UTF-8", s)
		}
		in.WriteString(base64.StdEncoding.EncodeToString([]byte(s)) + "\n")
	}
	cmd := exec.Command(php, "-r", `while (($l = fgets(STDIN)) !== false) { echo json_encode(base64_decode(trim($l)), JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n"; }`)
	cmd.Stdin = &in
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(corpus) {
		t.Fatalf("php printed %d lines for %d strings", len(lines), len(corpus))
	}
	for i, s := range corpus {
		if got := string(phpjson.AppendString(nil, s)); got != lines[i] {
			t.Errorf("%q: go %s, php %s", s, got, lines[i])
		}
	}
}

func TestAppendTime(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		tm := time.Unix(r.Int64N(253402300799), 0).In(time.FixedZone("z", 3600*(r.IntN(27)-12)))
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format("2006-01-02T15:04:05Z"); got != want {
			t.Fatalf("%v: got %s, want %s", tm, got, want)
		}
	}
}
