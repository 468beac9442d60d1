package routes

import (
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testRegistry has the handlers the examples in the brief use.
func testRegistry() Registry {
	h := HandlerFunc(func(*fasthttp.RequestCtx) error { return nil })
	return Registry{"campaigns.get": h, "campaigns.list": h, "events.ingest": h}
}

// mustDecode parses YAML into a Config, failing the test on error.
func mustDecode(t testing.TB, yaml string) Config {
	t.Helper()
	v, err := parse("config.yaml", []byte(yaml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	c, err := Decode(v)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return c
}

func mustCompile(t testing.TB, yaml string) *Table {
	t.Helper()
	tb, err := Compile(mustDecode(t, yaml), testRegistry())
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return tb
}
