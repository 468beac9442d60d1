package session

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// phpBin is PHP's CLI; a test that needs it fails (never skips) without it.
func phpBin(t testing.TB) string {
	t.Helper()
	for _, c := range []string{"php8.2", "php"} {
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	t.Fatal("php CLI not found: install with `sudo apt-get install -y php8.2-cli` (or `make deps`)")
	return ""
}

// runPHP runs code with php -n (no php.ini, so no distribution setting
// leaks in) and the given -d settings, bounded in time.
func runPHP(t testing.TB, code string, ini ...string) []byte {
	t.Helper()
	return runPHPArgs(t, ini, code)
}

// phpCases are $_SESSION contents, as PHP expressions, covering every kind
// of value, key and name the decoders meet. Names are ones all three
// handlers can store (php_binary: at most 127 bytes; php: no '|').
var phpCases = []string{
	`['user' => 'alice']`,
	`[]`,
	`['user' => "\u{fc}n\u{ef}c\u{f8}d\u{e9} \u{2713}", 'bin' => "\0\"';|{}:\n\r\t\\x", 'empty' => '', 'long' => str_repeat('xy', 5000)]`,
	`['i' => 0, 'neg' => PHP_INT_MIN, 'max' => PHP_INT_MAX, 't' => true, 'f' => false, 'n' => null, 'minus' => -42]`,
	`['fl' => [0.1, 1.0, -0.0, 0.0, 1e25, 1.5e-7, 0.0001, 1e-5, 1e15, 1e16, 1e17, 1.2345678901234568E+17, 0.1 + 0.2, 3.0e100, 5e-324, 1.7976931348623157e308, -2.5, 123456.789, INF, -INF, NAN]]`,
	`['cart' => ['items' => [['sku' => 'A1', 'qty' => 2, 'price' => 4.5], ['sku' => 'B2', 'qty' => 1, 'price' => 3.5]], 'total' => 12.5], 'roles' => ['admin', 'dev']]`,
	`['map' => [5 => 'five', '05' => 'zero-five', '7' => 'seven', -3 => 'neg', '' => 'empty key', 'a b' => 1, PHP_INT_MAX => 'max', '-0' => 'minus zero', ' 1' => 'space one']]`,
	`['deep' => array_reduce(range(1, 20), fn($c, $i) => ['l' . $i => $c], 'bottom')]`,
	`['list' => range(0, 999), 'assoc' => array_combine(array_map(fn($i) => 'k' . $i, range(0, 99)), range(0, 99))]`,
	`['a.b' => 1, 'x y' => 2, "\u{fc}ber" => 3, 'semi;colon' => 4, 'quote"d' => 5, str_repeat('n', 127) => 6]`,
	`['login' => ['user' => 'bob', 'at' => 1700000000, 'mfa' => true], 'csrf' => bin2hex(random_bytes(16)), 'flash' => []]`,
}

var handlers = []Handler{PHPSerialize, PHP, PHPBinary}

// phpSession is one session PHP wrote with its real session machinery.
type phpSession struct {
	Case      int     `json:"case"`
	Handler   Handler `json:"handler"`
	ID        string  `json:"id"`
	Canonical string  `json:"canonical"` // base64 of serialize($_SESSION) after the write
}

// writePHPSessions has PHP write every case with every handler into dir
// (files save handler, ids of the default SIDPolicy's shape) and returns
// what it wrote.
func writePHPSessions(t testing.TB, dir string) []phpSession {
	t.Helper()
	code := `$cases = [` + strings.Join(phpCases, ",\n") + `];
foreach ($cases as $i => $c) {
	session_start();
	$_SESSION = $c;
	$id = session_id();
	session_write_close();
	echo json_encode(['case' => $i, 'handler' => ini_get('session.serialize_handler'), 'id' => $id, 'canonical' => base64_encode(serialize($c))]), "\n";
	session_id('');
	$_SESSION = [];
}`
	var got []phpSession
	for _, h := range handlers {
		out := runPHP(t, code, "session.serialize_handler="+string(h),
			"session.save_path="+dir, "session.use_cookies=0", "session.use_strict_mode=1", "session.cache_limiter=",
			"session.sid_length=26", "session.sid_bits_per_character=5", "error_reporting=-1", "display_errors=stderr")
		for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
			var s phpSession
			if err := json.Unmarshal(line, &s); err != nil {
				t.Fatalf("php output %q: %v", line, err)
			}
			got = append(got, s)
		}
	}
	if len(got) != len(phpCases)*len(handlers) {
		t.Fatalf("php wrote %d sessions, want %d", len(got), len(phpCases)*len(handlers))
	}
	return got
}

// TestDecodeAgainstPHP: what PHP's files handler wrote, with each serialize
// handler, decodes to the same $_SESSION (compared through serialize(),
// which PHP printed), and encoding it again gives PHP's bytes exactly.
func TestDecodeAgainstPHP(t *testing.T) {
	dir := t.TempDir()
	files, err := NewFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	pol := SIDPolicy{}.WithDefaults()
	for _, ps := range writePHPSessions(t, dir) {
		t.Run(fmt.Sprintf("%s/%02d", ps.Handler, ps.Case), func(t *testing.T) {
			if !pol.Valid([]byte(ps.ID)) {
				t.Fatalf("PHP issued id %q, which SIDPolicy refuses", ps.ID)
			}
			raw, err := files.Read(context.Background(), ps.ID, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			top, err := Decode(ps.Handler, raw, Limits{MaxBytes: 1 << 20})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			want, _ := base64.StdEncoding.DecodeString(ps.Canonical)
			got, err := Encode(PHPSerialize, top)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("decoded then serialized:\n got %.300q\nwant %.300q", got, want)
			}
			again, err := Encode(ps.Handler, top)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, raw) {
				t.Errorf("Encode(%s) differs from what PHP wrote:\n got %.300q\nwant %.300q", ps.Handler, again, raw)
			}
		})
	}
}

// TestEncodeReadByPHP: sessions Go encodes are what PHP's session_decode
// reads, for every handler.
func TestEncodeReadByPHP(t *testing.T) {
	top := (&Array{}).
		With("user", StringValue("carol")).
		With("n", IntValue(-7)).
		With("pi", FloatValue(3.14159)).
		With("ok", BoolValue(true)).
		With("none", NullValue()).
		With("nested", ArrayValue((&Array{}).With("0", StringValue("zero")).With("k", FloatValue(1e30))))
	want := `a:6:{s:4:"user";s:5:"carol";s:1:"n";i:-7;s:2:"pi";d:3.14159;s:2:"ok";b:1;s:4:"none";N;s:6:"nested";a:2:{i:0;s:4:"zero";s:1:"k";d:1.0E+30;}}`
	for _, h := range handlers {
		t.Run(string(h), func(t *testing.T) {
			data, err := Encode(h, top)
			if err != nil {
				t.Fatal(err)
			}
			got := runPHPArgs(t, []string{"session.serialize_handler=" + string(h), "session.use_cookies=0", "session.save_path=" + t.TempDir(), "session.cache_limiter="},
				`session_start(); $ok = session_decode(base64_decode($argv[1])); echo $ok ? serialize($_SESSION) : 'FAILED';`,
				base64.StdEncoding.EncodeToString(data))
			if string(got) != want {
				t.Errorf("PHP read back\n %s\nwant\n %s", got, want)
			}
		})
	}
}

// runPHPArgs is runPHP with arguments for $argv.
func runPHPArgs(t testing.TB, ini []string, code string, argv ...string) []byte {
	t.Helper()
	args := []string{"-n"}
	for _, s := range ini {
		args = append(args, "-d", s)
	}
	args = append(args, "-r", code, "--")
	args = append(args, argv...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, phpBin(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, stderr.String())
	}
	return out
}
