package promreg

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func counter(name string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: name})
}

// TestAllOrNone: a clash on the third collector leaves the first two
// unregistered, so the group can be registered again once the clash is
// gone.
func TestAllOrNone(t *testing.T) {
	reg := prometheus.NewRegistry()
	clash := counter("c")
	if err := reg.Register(clash); err != nil {
		t.Fatal(err)
	}
	group := []prometheus.Collector{counter("a"), counter("b"), counter("c")}
	err := Register(reg, "test", group...)
	if err == nil || !strings.Contains(err.Error(), "register test metrics") {
		t.Fatalf("Register = %v, want the clash named", err)
	}
	reg.Unregister(clash)
	if err := Register(reg, "test", group...); err != nil {
		t.Fatalf("after the failed attempt the group does not register: %v", err)
	}
	Unregister(reg, group...)
	if err := Register(reg, "test", group...); err != nil {
		t.Fatalf("after Unregister: %v", err)
	}
	if err := Register(nil, "test", group...); err != nil {
		t.Fatalf("nil registry: %v", err)
	}
}
