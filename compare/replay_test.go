package compare

import (
	"math/rand/v2"
	"testing"
	"time"
)

func classOfPath(p *Profile, tpl string) string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if pp := p.paths[tpl]; pp != nil {
		return pp.state.String()
	}
	return ""
}

// A legacy answer to a keyed request that replays an earlier one holds a
// time from before its window: Replayed says so, from the first answer
// on, for a path learning or classified as the request's clock, and not
// for one known to be computed or for an answer made now.
func TestReplayed(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	learned, start := learnedIntake(r)
	now := start.Add(time.Hour)
	w := Window{Start: now, End: now.Add(3 * time.Millisecond)}
	computed := NewProfile(NoiseConfig{})
	for i := range 30 {
		at := start.Add(-time.Duration(i) * time.Hour) // a past time: computed
		computed.Observe(accepted(uuid4(r), at), "body", Window{Start: start, End: start.Add(time.Millisecond)}, nil)
	}
	if c := classOfPath(computed, "body.received_at"); c != "computed" {
		t.Fatalf("received_at of the computed profile is %q", c)
	}
	tests := []struct {
		name string
		p    *Profile
		give Response
		want bool
	}{
		{"nothing learned, a replay", NewProfile(NoiseConfig{}), accepted(uuid4(r), now.Add(-5*time.Minute)), true},
		{"nothing learned, fresh", NewProfile(NoiseConfig{}), accepted(uuid4(r), now.Add(time.Millisecond)), false},
		{"clock path, a replay", learned, accepted(uuid4(r), now.Add(-3*time.Second)), true},
		{"clock path, within skew", learned, accepted(uuid4(r), now.Add(-500*time.Millisecond)), false},
		{"clock path, fresh", learned, accepted(uuid4(r), now.Add(time.Millisecond)), false},
		{"computed path", computed, accepted(uuid4(r), now.Add(-5*time.Minute)), false},
		{"a number is no time unless learned", NewProfile(NoiseConfig{}), jsonResp(200, `{"n":1500}`), false},
		{"not JSON", NewProfile(NoiseConfig{}), Response{Status: 200, Body: []byte("2020-01-01T00:00:00Z"), ContentType: "text/plain"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Replayed(tt.give, "body", w); got != tt.want {
				t.Errorf("Replayed = %v, want %v", got, tt.want)
			}
		})
	}
}

// Answers to keyed requests never teach the profile that a clock path is
// computed from a time before their window (a replay), however many; but
// a path that holds past times in every keyed answer, and never one
// within its window, becomes computed after MinObservations of them, so
// that it stops making every keyed answer look like a replay.
func TestKeyedAnswersTeachNoReplay(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	p, start := learnedIntake(r)
	for i := range 50 {
		at := start.Add(time.Hour + time.Duration(i)*time.Second)
		w := Window{Start: at, End: at.Add(time.Millisecond)}
		p.ObserveKeyed(accepted(uuid4(r), at.Add(-10*time.Minute)), "body", w, nil)
		p.ObserveReplay(accepted(uuid4(r), at.Add(-10*time.Minute)), "body", w)
	}
	if c := classOfPath(p, "body.received_at"); c != "clock" {
		t.Fatalf("received_at is %q after keyed replays, want clock still", c)
	}

	past := NewProfile(NoiseConfig{})
	body := func(at time.Time) Response {
		return jsonResp(200, `{"created_at":"`+at.UTC().Format(time.RFC3339)+`"}`)
	}
	for i := range DefaultMinObservations {
		at := start.Add(time.Duration(i) * time.Second)
		w := Window{Start: at, End: at.Add(time.Millisecond)}
		old := body(at.Add(-24 * time.Hour))
		if !past.Replayed(old, "body", w) {
			t.Fatalf("answer %d: not judged a possible replay while created_at is unknown", i)
		}
		past.ObserveReplay(old, "body", w)
	}
	w := Window{Start: start.Add(time.Hour), End: start.Add(time.Hour + time.Millisecond)}
	if c := classOfPath(past, "body.created_at"); c != "computed" || past.Replayed(body(start), "body", w) {
		t.Fatalf("created_at is %q after %d past times in keyed answers, want computed and no replay", c, DefaultMinObservations)
	}
}
