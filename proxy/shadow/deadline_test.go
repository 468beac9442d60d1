package shadow

import (
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/routes"
)

// A timer that fires late, for a call that has returned, abandons neither
// that call nor the job's next one; only a call past its own deadline is
// abandoned (the front door's TestShadowHungCandidateFreesItsSlotAfterTheDeadline
// shows the rest).
func TestLateDeadlineFireAbandonsNothing(t *testing.T) {
	e, err := New(Options{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	j := &Job{engine: e, route: &Route{Timeout: time.Hour}}
	first := j.arm(routes.SidePorted, &j.candBody, false)
	if !j.disarm(first) {
		t.Fatal("a call disarmed in time was abandoned")
	}
	j.expire() // the first call's fire, after it returned
	next := j.arm(routes.SidePorted, &j.candBody, false)
	if next <= first {
		t.Fatalf("generation %d after %d", next, first)
	}
	j.expire() // still the first call's fire: the next one's deadline is an hour away
	if !j.disarm(next) || e.Abandoned() != 0 {
		t.Fatalf("a late fire abandoned the next call (abandoned %d)", e.Abandoned())
	}
	if j.disarm(next) {
		t.Error("a call was disarmed twice")
	}
	// Without a timeout there is no deadline at all.
	j.route = &Route{}
	if g := j.arm(routes.SidePorted, &j.candBody, false); g != 0 || !j.disarm(g) {
		t.Errorf("no timeout: arm = %d", g)
	}
}

// BenchmarkCallDeadline is what the deadline adds to every call a shadow
// job makes that returns in time: arming the job's timer and disarming it.
func BenchmarkCallDeadline(b *testing.B) {
	e, err := New(Options{Workers: 1})
	if err != nil {
		b.Fatal(err)
	}
	j := &Job{engine: e, route: &Route{Timeout: 5 * time.Second}}
	b.ReportAllocs()
	for b.Loop() {
		if !j.disarm(j.arm(routes.SidePorted, &j.candBody, false)) {
			b.Fatal("abandoned")
		}
	}
}
