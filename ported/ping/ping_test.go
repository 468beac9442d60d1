package ping

import (
	"testing"

	"github.com/valyala/fasthttp"
)

func TestServeAnswersLikePHP(t *testing.T) {
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodGet)
	ctx.Request.SetRequestURI("/api/v1/ping")
	if err := (Handler{}).Serve(&ctx); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if got := ctx.Response.StatusCode(); got != fasthttp.StatusOK {
		t.Errorf("status %d, want 200", got)
	}
	if got := string(ctx.Response.Header.ContentType()); got != "application/json" {
		t.Errorf("Content-Type %q, want application/json", got)
	}
	// PHP's legacy_ping answers the same bytes with "php".
	if got, want := string(ctx.Response.Body()), `{"status":"ok","implementation":"go"}`; got != want {
		t.Errorf("body %s, want %s", got, want)
	}
}
