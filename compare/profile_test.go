package compare

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// uuid4 is a random version-4 UUID, as the PHP intake makes them.
func uuid4(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// accepted is an intake's 202 at time at.
func accepted(id string, at time.Time) Response {
	return jsonResp(202, `{"status":"accepted","event_id":"`+id+`","received_at":"`+at.UTC().Format("2006-01-02T15:04:05.000Z")+`"}`)
}

// exchange is one request answered by both sides: legacy first, then Go
// a few milliseconds later, each within its own window.
type exchange struct {
	legacy, goSide Response
	wl, wg         Window
}

func intakeExchange(r *rand.Rand, start time.Time) exchange {
	wl := Window{Start: start, End: start.Add(3 * time.Millisecond)}
	wg := Window{Start: start.Add(4 * time.Millisecond), End: start.Add(5 * time.Millisecond)}
	return exchange{
		legacy: accepted(uuid4(r), start.Add(time.Millisecond+time.Duration(r.IntN(900))*time.Microsecond)),
		goSide: accepted(uuid4(r), start.Add(4*time.Millisecond+time.Duration(r.IntN(900))*time.Microsecond)),
		wl:     wl, wg: wg,
	}
}

// learnedIntake is a profile that has seen 30 of the intake's legacy
// answers, from start on.
func learnedIntake(r *rand.Rand) (*Profile, time.Time) {
	p := NewProfile(NoiseConfig{})
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range 30 {
		x := intakeExchange(r, start.Add(time.Duration(i)*time.Second))
		p.Observe(x.legacy, "body", x.wl, nil)
	}
	return p, start
}

// The intake's event_id (a UUID) and received_at (the request's clock)
// are learned from the legacy answers alone: after the warm-up they are
// noise, before it they are pending and settle as noise, and nothing else
// is silenced.
func TestProfileLearnsGeneratedAndClockValues(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := NewProfile(NoiseConfig{})
	c := MustCompile(Rules{})
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var pending []Result
	for i := range 60 {
		x := intakeExchange(r, start.Add(time.Duration(i)*time.Second))
		p.Observe(x.legacy, "body", x.wl, []byte("POST /api/v1/events"))
		res := c.DiffWith(x.legacy, x.goSide, DiffOptions{Profile: p, Windows: [2]Window{x.wl, x.wg}})
		if len(res.Diffs) != 2 {
			t.Fatalf("request %d: diffs %+v, want event_id and received_at", i, res.Diffs)
		}
		for _, d := range res.Diffs {
			switch {
			case i < DefaultMinObservations-1 && !d.Pending:
				t.Fatalf("request %d: %s not pending while learning: %+v", i, d.Path, d)
			case i >= DefaultMinObservations && (!d.Noise || d.Pending):
				t.Fatalf("request %d: %s not noise after learning: %+v", i, d.Path, d)
			}
		}
		if res.Diffs[0].Pending {
			pending = append(pending, res)
		}
	}
	for _, res := range pending {
		for i := range res.Diffs {
			d := &res.Diffs[i]
			if !p.Settle(d) || !d.Noise || d.Pending {
				t.Fatalf("settled %+v, want noise", d)
			}
		}
	}
	byPath := map[string]ProfileField{}
	for _, f := range p.Fields() {
		byPath[f.Template] = f
	}
	if f := byPath["body.event_id"]; f.Class != "generated" || !strings.Contains(f.Evidence, "none repeated") || !strings.Contains(f.Evidence, "xxxxxxxx-xxxx-4xxx") {
		t.Errorf("event_id: %+v", f)
	}
	if f := byPath["body.received_at"]; f.Class != "clock" || !strings.Contains(f.Evidence, "time window") {
		t.Errorf("received_at: %+v", f)
	}
	if _, ok := byPath["body.status"]; ok {
		t.Errorf("status (computed from the first answers) is listed: %+v", byPath["body.status"])
	}
}

// Generated and clock paths still catch a candidate whose value is of
// another shape or layout, or outside its request's window.
func TestProfileTreatmentRefusals(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p, start := learnedIntake(r)
	c := MustCompile(Rules{})
	x := intakeExchange(r, start.Add(time.Hour))
	p.Observe(x.legacy, "body", x.wl, nil)
	w := [2]Window{x.wl, x.wg}
	tests := []struct {
		name   string
		goSide Response
		want   []string
	}{
		{"upper-case UUID", jsonResp(202, `{"status":"accepted","event_id":"`+strings.ToUpper(uuid4(r))+`","received_at":"`+x.wg.Start.Format("2006-01-02T15:04:05.000Z")+`"}`),
			[]string{"format body.event_id"}},
		{"seconds instead of milliseconds", jsonResp(202, `{"status":"accepted","event_id":"`+uuid4(r)+`","received_at":"`+x.wg.Start.Format("2006-01-02T15:04:05Z")+`"}`),
			[]string{"format body.received_at"}},
		{"an hour off", jsonResp(202, `{"status":"accepted","event_id":"`+uuid4(r)+`","received_at":"`+x.wg.Start.Add(time.Hour).Format("2006-01-02T15:04:05.000Z")+`"}`),
			[]string{"value body.received_at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.DiffWith(x.legacy, tt.goSide, DiffOptions{Profile: p, Windows: w})
			var got []string
			for _, d := range res.Diffs {
				if !d.Noise {
					got = append(got, string(d.Kind)+" "+d.Path)
					if d.Note == "" {
						t.Errorf("%s: no note", d.Path)
					}
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("real diffs %q, want %q (all: %+v)", got, tt.want, res.Diffs)
			}
		})
	}
}

// Values that repeat, echo the request, lie outside the window or vary too
// little are computed: compared by value, never silenced.
func TestProfileComputedValues(t *testing.T) {
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value func(i int, at time.Time) string
		req   func(v string) []byte
		why   string
	}{
		{"repeats", func(i int, _ time.Time) string { return fmt.Sprintf("tok_%032d", i%7) }, nil, "repeated"},
		{"echo", func(i int, _ time.Time) string { return uuid4(rand.New(rand.NewPCG(uint64(i), 9))) }, func(v string) []byte { return []byte(`{"id":"` + v + `"}`) }, "echo"},
		{"short ids", func(i int, _ time.Time) string { return fmt.Sprintf("cmp_%06d", i*37) }, nil, "bits of variation"},
		{"old times", func(i int, at time.Time) string { return at.Add(-time.Duration(i+1) * time.Hour).Format(time.RFC3339) }, nil, "outside"},
		{"varying length", func(i int, _ time.Time) string { return strings.Repeat("x", 10+i%3) }, nil, "lengths"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewProfile(NoiseConfig{})
			for i := range 40 {
				at := start.Add(time.Duration(i) * time.Second)
				v := tt.value(i, at)
				var req []byte
				if tt.req != nil {
					req = tt.req(v)
				}
				p.Observe(jsonResp(200, `{"v":"`+v+`"}`), "body", Window{Start: at, End: at.Add(time.Millisecond)}, req)
			}
			p.mu.RLock()
			pp := p.paths["body.v"]
			p.mu.RUnlock()
			if pp.state != stateComputed || !strings.Contains(pp.why, tt.why) && !(tt.why == "outside" && strings.Contains(pp.why, "before")) {
				t.Fatalf("state %s, why %q; want computed because %s", pp.state, pp.why, tt.why)
			}
			if tr, _ := p.treat([]byte("body.v"), "a", "b", false, Window{}, Window{}); tr != treatValue {
				t.Fatalf("treatment %d, want by value", tr)
			}
		})
	}
}

// A generated path whose legacy value later repeats becomes computed, and
// the report says what it was and when that changed.
func TestProfileRefutedLater(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	p := NewProfile(NoiseConfig{})
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var first string
	for i := range 25 {
		x := intakeExchange(r, start.Add(time.Duration(i)*time.Second))
		if i == 0 {
			first = string(x.legacy.Body)
		}
		p.Observe(x.legacy, "body", x.wl, nil)
	}
	// The first answer again, within its window: its event_id repeats.
	p.Observe(Response{Body: []byte(first), ContentType: "application/json"}, "body", Window{Start: start, End: start.Add(3 * time.Millisecond)}, nil)
	for _, f := range p.Fields() {
		if f.Template == "body.event_id" {
			if f.Class != "computed" || f.Was != "generated" || f.Since.IsZero() || !strings.Contains(f.Evidence, "repeated") {
				t.Fatalf("event_id after a repeat: %+v", f)
			}
			return
		}
	}
	t.Fatal("event_id not listed")
}

// oneField is a profile that learns one string field, "f", from 3 legacy
// answers, all within one window, and the comparator judging it.
type oneField struct {
	p *Profile
	c *Comparator
	w Window
}

func newOneField() oneField {
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	return oneField{NewProfile(NoiseConfig{MinObservations: 3}), MustCompile(Rules{}), Window{Start: at, End: at.Add(time.Millisecond)}}
}

func fieldAnswer(v string) Response { return jsonResp(200, `{"f":"`+v+`"}`) }

// observe shows the profile legacy answers with these values of f.
func (o oneField) observe(vs ...string) {
	for _, v := range vs {
		o.p.Observe(fieldAnswer(v), "body", o.w, nil)
	}
}

// diff compares a legacy and a Go value of f.
func (o oneField) diff(legacy, goSide string) Result {
	return o.c.DiffWith(fieldAnswer(legacy), fieldAnswer(goSide), DiffOptions{Profile: o.p, Windows: [2]Window{o.w, o.w}})
}

// A pending difference at a path that turns out computed is a real one.
func TestProfileSettleComputed(t *testing.T) {
	o := newOneField()
	o.observe("ab12cd34ef56ab12cd34")
	res := o.diff("ab12cd34ef56ab12cd34", "ff12cd34ef56ab12cd99")
	if len(res.Diffs) != 1 || !res.Diffs[0].Pending {
		t.Fatalf("diffs %+v, want one pending", res.Diffs)
	}
	if o.p.Settle(&res.Diffs[0]) {
		t.Fatal("settled while learning")
	}
	o.observe("ab12cd34ef56ab12cd34") // a repeat
	d := &res.Diffs[0]
	if !o.p.Settle(d) || d.Noise || d.Pending || d.Kind != KindValue {
		t.Fatalf("settled %+v, want a real value difference", d)
	}
}

// While a path learns, a value is held for a class its first legacy
// values happened not to show: a random hex id is all digits one time in
// about 1,800 (10/16 to the 16th), and the Go side's next id then has a
// letter. Judged at once, that was a false "value" (or, Go against
// itself, "not deterministic") difference; held, it settles as noise
// once the path has shown its letters too.
func TestProfileHoldsAClassNotSeenYet(t *testing.T) {
	o := newOneField()
	o.observe("6205184939917243")
	res := o.diff("6205184939917243", "a3f0c9e1b2d45678")
	if len(res.Diffs) != 1 || !res.Diffs[0].Pending {
		t.Fatalf("diffs %+v, want one pending", res.Diffs)
	}
	o.observe("9be01c4d7f3a2e58", "04c7d2e9f1ab3865")
	d := &res.Diffs[0]
	if !o.p.Settle(d) || !d.Noise || d.NoiseBy != "generated" {
		t.Fatalf("settled %+v, want noise (generated)", d)
	}

	// A class the path never shows is still a difference once it is
	// classified: upper-case where legacy writes lower-case hex.
	res = o.diff("6205184939917243", "A3F0C9E1B2D45678")
	if len(res.Diffs) != 1 || res.Diffs[0].Noise || res.Diffs[0].Pending || res.Diffs[0].Kind != KindFormat {
		t.Fatalf("diffs %+v, want one format difference", res.Diffs)
	}
}

func TestParseClock(t *testing.T) {
	tests := []struct {
		give   string
		ok     bool
		layout string
		want   time.Time
	}{
		{"2025-06-01T12:00:00Z", true, "YYYY-MM-DDThh:mm:ssZ", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"2025-06-01T12:00:00.123Z", true, "YYYY-MM-DDThh:mm:ss.fffZ", time.Date(2025, 6, 1, 12, 0, 0, 123e6, time.UTC)},
		{"2025-06-01 12:00:00", true, "YYYY-MM-DD hh:mm:ss", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"2025-06-01T14:00:00.5+02:00", true, "YYYY-MM-DDThh:mm:ss.f±hh:mm", time.Date(2025, 6, 1, 12, 0, 0, 5e8, time.UTC)},
		{"2025-06-01T10:00:00-0200", true, "YYYY-MM-DDThh:mm:ss±hhmm", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)},
		{"2025-13-01T12:00:00Z", false, "", time.Time{}},
		{"2025-06-01T12:00:00X", false, "", time.Time{}},
		{"not a time at all, no", false, "", time.Time{}},
	}
	for _, tt := range tests {
		got, l, ok := parseClockString(tt.give)
		if ok != tt.ok || ok && (l.String() != tt.layout || !got.Equal(tt.want)) {
			t.Errorf("parse %q = %v %q %v, want %v %q %v", tt.give, got, l, ok, tt.want, tt.layout, tt.ok)
		}
	}
	if got, l, ok := parseClockNumber("1748779200123"); !ok || l.String() != "Unix milliseconds" || got.UnixMilli() != 1748779200123 {
		t.Errorf("ms epoch: %v %v %v", got, l, ok)
	}
	if _, _, ok := parseClockNumber("4580142000.0"); ok {
		t.Error("a decimal is no epoch")
	}
}

// Go answering the same request twice: noise the legacy side explains
// (its generated and clock values) is not a finding; anything else is.
func TestProfileGoAgainstItself(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	p, start := learnedIntake(r)
	c := MustCompile(Rules{})
	a, b := intakeExchange(r, start.Add(time.Hour)), intakeExchange(r, start.Add(time.Hour))
	res := c.DiffWith(a.goSide, b.goSide, DiffOptions{Profile: p, Windows: [2]Window{a.wg, b.wg}})
	for _, d := range res.Diffs {
		if !d.Noise {
			t.Fatalf("Go against itself: %+v", d)
		}
	}
}

// Once every path is classified and 1,000 answers were seen, one answer in
// ten is observed; a new path ends the thinning.
func TestProfileThinsOnceSettled(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	p := NewProfile(NoiseConfig{})
	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := range 2000 {
		x := intakeExchange(r, start.Add(time.Duration(i)*time.Second))
		p.Observe(x.legacy, "body", x.wl, nil)
	}
	if got := p.Answers(); got != settleAnswers+(2000-settleAnswers)/settledEvery {
		t.Fatalf("observed %d answers of 2000", got)
	}
	before := p.Answers()
	at := start.Add(time.Hour)
	w := Window{Start: at, End: at.Add(time.Millisecond)}
	for range 10 { // one of them observed: it brings a new path
		p.Observe(jsonResp(200, `{"new":"`+uuid4(r)+`"}`), "body", w, nil)
	}
	for range 10 { // the new path learns: every answer is observed again
		p.Observe(jsonResp(200, `{"new":"`+uuid4(r)+`"}`), "body", w, nil)
	}
	if got := p.Answers() - before; got != 11 {
		t.Fatalf("observed %d of 20 answers after a new path, want 11", got)
	}
}
