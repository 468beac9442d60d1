package linelog

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLine is what zap's production JSON encoder writes for the same entry.
func zapLine(t *testing.T, ts time.Time, fields ...zap.Field) []byte {
	t.Helper()
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	buf, err := enc.EncodeEntry(zapcore.Entry{Level: zapcore.InfoLevel, Time: ts, LoggerName: "access", Message: "request"}, fields)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

func TestLineEscapesStringsAsZapDoes(t *testing.T) {
	ts := time.Unix(1700000000, 0)
	for _, s := range []string{
		"", "/plain/path?q=1", `quote " and \ backslash`, "ctl \x00\x01\x1f\x7f tab\t nl\n cr\r",
		"<html>&amp;", "utf-8 é ü ✓ 😀", "bad \xff\xfe utf-8 \xe2\x82", "\u2028\u2029",
	} {
		var l Line
		l.Begin("info", "access", "request", ts)
		l.String("k", s)
		got := withoutTS(l.End())
		want := withoutTS(zapLine(t, ts, zap.String("k", s)))
		if !bytes.Equal(got, want) {
			t.Errorf("%q:\n got %s\nwant %s", s, got, want)
		}
		l.Begin("info", "access", "request", ts)
		l.Bytes("k", []byte(s))
		if got := withoutTS(l.End()); !bytes.Equal(got, want) {
			t.Errorf("Bytes %q:\n got %s\nwant %s", s, got, want)
		}
	}
}

func TestLineNumbersMatchZapValues(t *testing.T) {
	ts := time.Unix(1764633600, 123456789)
	for _, d := range []time.Duration{0, time.Nanosecond, 1234567 * time.Nanosecond, 1500 * time.Millisecond, 61 * time.Second, -2 * time.Millisecond} {
		var l Line
		l.Begin("info", "access", "request", ts)
		l.Int("status", 404)
		l.Int("bytes", -1)
		l.Seconds("duration", d)
		got := decode(t, l.End())
		want := decode(t, zapLine(t, ts, zap.Int("status", 404), zap.Int("bytes", -1), zap.Duration("duration", d)))
		for _, k := range []string{"level", "logger", "msg", "status", "bytes", "duration"} {
			if got[k] != want[k] {
				t.Errorf("%v: %s = %v, zap says %v", d, k, got[k], want[k])
			}
		}
		// ts to the microsecond (zap writes the float's shortest form).
		if g, w := got["ts"].(float64), want["ts"].(float64); g-w > 1e-6 || w-g > 1e-6 {
			t.Errorf("ts %v, zap %v", g, w)
		}
	}
}

func TestLineKeyOrderAndReuse(t *testing.T) {
	var l Line
	l.Begin("info", "access", "request", time.Unix(1, 0))
	l.String("a", "1")
	l.Int("b", 2)
	first := string(l.End())
	if want := `{"level":"info","ts":1.000000,"logger":"access","msg":"request","a":"1","b":2}` + "\n"; first != want {
		t.Errorf("got %s want %s", first, want)
	}
	l.Begin("warn", "x", "m", time.Unix(2, 0))
	if got := string(l.End()); !strings.HasPrefix(got, `{"level":"warn","ts":2.000000,"logger":"x","msg":"m"}`) {
		t.Errorf("reused line: %s", got)
	}
}

// withoutTS drops the ts value, whose digits differ (zap writes the float's
// shortest form, Line a fixed six decimals); TestLineNumbersMatchZapValues
// compares the values.
func withoutTS(b []byte) []byte {
	return regexp.MustCompile(`"ts":[0-9.]+`).ReplaceAll(b, []byte(`"ts":_`))
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return m
}

func BenchmarkLine(b *testing.B) {
	var l Line
	ts := time.Now()
	id := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	for b.Loop() {
		l.Begin("info", "access", "request", ts)
		l.Bytes("request_id", id)
		l.String("method", "GET")
		l.String("host", "shop.example")
		l.String("path", "/api/v1/campaigns/cmp_004242?country=DE")
		l.String("route", "campaign")
		l.String("mode", "legacy")
		l.String("backend", "legacy")
		l.Int("status", 200)
		l.Seconds("duration", 1234*time.Microsecond)
		l.Int("bytes_in", 0)
		l.Int("bytes_out", 512)
		l.String("remote", "127.0.0.1")
		_ = l.End()
	}
}

func BenchmarkWrite(b *testing.B) {
	w := New(discard{}, Options{})
	line := bytes.Repeat([]byte("x"), 299)
	line = append(line, '\n')
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		_, _ = w.Write(line)
	}
	_ = w.Close()
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
