package session

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
)

// benchVars is a realistic logged-in session: a user, roles, a small cart
// and a CSRF token (about 600 bytes with php_serialize).
const benchVars = `['user' => 'alice', 'uid' => 1234567, 'roles' => ['customer', 'beta'],
	'login' => ['at' => 1700000000, 'mfa' => true, 'ip' => '203.0.113.7'],
	'cart' => ['items' => [['sku' => 'SKU-000123', 'qty' => 2, 'price' => 19.99], ['sku' => 'SKU-000456', 'qty' => 1, 'price' => 5.5]], 'total' => 45.48],
	'csrf' => 'c9d3cce4e38f3dd9558de03169ba7580c9d3cce4e38f3dd9558de03169ba7580', 'locale' => 'en_GB', 'flash' => []]`

// phpReadLoop has PHP read the session n times the way a page does,
// session_start(['read_and_close' => true]) on phpredis (a connection per
// start, as each PHP-FPM request makes by default), and prints each read's
// nanoseconds.
const phpReadLoop = `$n = (int)$argv[1]; $id = $argv[2];
for ($i = 0; $i < $n; $i++) {
	session_id($id);
	$t = hrtime(true);
	session_start(['read_and_close' => true]);
	$d = hrtime(true) - $t;
	if (($_SESSION['user'] ?? null) !== 'alice') { fwrite(STDERR, "no session\n"); exit(1); }
	$_SESSION = [];
	echo $d, "\n";
}`

// BenchmarkSessionReadRedis: one Go session read (cookie, id check, GET
// from a local redis-server, php_serialize decode) against PHP's own
// session_start(['read_and_close' => true]) on the same data, interleaved
// round by round. Reports each side's p50 and p99 in µs and the p99 ratio
// (PHP over Go). Run: make bench-session
func BenchmarkSessionReadRedis(b *testing.B) {
	k := startRedis(b)
	ini := []string{"session.save_handler=redis", "session.save_path=tcp://" + k.Addr, "session.serialize_handler=php_serialize"}
	phpWriteSession(b, testID, benchVars, ini...)
	r, err := New(Options{Config: Config{Backend: BackendRedis, Address: k.Addr, SerializeHandler: PHPSerialize}})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	ctx := requestWithCookie(b, "locale=en; PHPSESSID="+testID)
	const rounds, perRound = 5, 2000
	// The floor: a bare read (GETRANGE) of the same key on the same client, what any
	// Go read of Redis pays before cookie, id check and decode.
	raw := r.store.(*Redis)
	var goNs, phpNs, getNs []float64
	b.ResetTimer()
	for range b.N {
		for range rounds {
			goNs = append(goNs, goReads(b, r, ctx, perRound)...)
			phpNs = append(phpNs, phpReads(b, ini, perRound)...)
			for range perRound {
				t := time.Now()
				if _, err := raw.Read(context.Background(), testID, 1<<20); err != nil {
					b.Fatal(err)
				}
				getNs = append(getNs, float64(time.Since(t).Nanoseconds()))
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(pct(getNs, 50)/1e3, "get_p50_µs")
	b.ReportMetric(pct(getNs, 99)/1e3, "get_p99_µs")
	gp50, gp99 := pct(goNs, 50), pct(goNs, 99)
	pp50, pp99 := pct(phpNs, 50), pct(phpNs, 99)
	b.ReportMetric(gp50/1e3, "go_p50_µs")
	b.ReportMetric(gp99/1e3, "go_p99_µs")
	b.ReportMetric(pp50/1e3, "php_p50_µs")
	b.ReportMetric(pp99/1e3, "php_p99_µs")
	b.ReportMetric(pp99/gp99, "php/go_p99")
	b.ReportMetric(pp50/gp50, "php/go_p50")
}

func goReads(b *testing.B, r *Reader, ctx *fasthttp.RequestCtx, n int) []float64 {
	out := make([]float64, 0, n)
	for range n {
		t := time.Now()
		s, err := r.Session(ctx)
		d := time.Since(t)
		if err != nil {
			b.Fatal(err)
		}
		if u, _ := s.String("user"); u != "alice" {
			b.Fatalf("user %q", u)
		}
		out = append(out, float64(d.Nanoseconds()))
	}
	return out
}

func phpReads(b *testing.B, ini []string, n int) []float64 {
	out := runPHPArgs(b, append(append([]string{"session.use_cookies=0", "session.cache_limiter="}, phpExt...), ini...),
		phpReadLoop, strconv.Itoa(n), testID)
	var ns []float64
	for _, l := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(l, 64)
		if err != nil {
			b.Fatalf("php output %q", l)
		}
		ns = append(ns, v)
	}
	if len(ns) != n {
		b.Fatalf("php timed %d reads, want %d", len(ns), n)
	}
	return ns
}

func pct(v []float64, p int) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

// BenchmarkDecode is the decoder alone on the same session.
func BenchmarkDecode(b *testing.B) {
	data := runPHP(b, `echo serialize(`+benchVars+`);`)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(PHPSerialize, data, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}
