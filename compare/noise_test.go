package compare

import (
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeImpl is an intake-like endpoint: every answer carries a fresh UUID
// and the time it was received, at microsecond precision, like PHP's
// microtime and Go's time.Now.
type fakeImpl struct {
	mu    sync.Mutex
	now   time.Time
	fault func(body string, h [][2]string, status int) (string, [][2]string, int)
}

func (f *fakeImpl) answer(userID int) Response {
	f.mu.Lock()
	f.now = f.now.Add(1234 * time.Microsecond)
	now := f.now
	f.mu.Unlock()
	body := fmt.Sprintf(`{"status":"accepted","event_id":%q,"received_at":%q,"user_id":"u%d",`+
		`"amount":19.99,"items":[{"sku":"a","qty":1},{"sku":"b","qty":2}]}`,
		rand.Text(), now.Format(time.RFC3339Nano), userID)
	h := [][2]string{{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}, {"Date", now.Format(time.RFC1123)}}
	status := 202
	if f.fault != nil {
		body, h, status = f.fault(body, h, status)
	}
	return Response{Status: status, Header: h, Body: []byte(body)}
}

// shadow runs n requests the way the proxy does: primary, sometimes the
// primary again to learn noise, candidate, classify.
func shadow(c *Comparator, noise *Noise, primary, candidate *fakeImpl, n int) (map[Outcome]int, []Result) {
	counts := map[Outcome]int{}
	var mismatches []Result
	for i := range n {
		p := primary.answer(i)
		var self *Result
		if noise.Sample() {
			r := c.Diff(p, primary.answer(i))
			noise.Learn(r)
			self = &r
		}
		r := c.Diff(p, candidate.answer(i))
		o := noise.Classify(&r, self)
		counts[o]++
		if o == OutcomeMismatch {
			mismatches = append(mismatches, r)
		}
	}
	return counts, mismatches
}

func TestNoisyIdenticalImplementationsMatch(t *testing.T) {
	c := MustCompile(Rules{}) // no manual rules
	noise := NewNoise(NoiseConfig{})
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	counts, mismatches := shadow(c, noise, &fakeImpl{now: start}, &fakeImpl{now: start.Add(time.Millisecond)}, 1000)
	if counts[OutcomeMismatch] != 0 {
		t.Fatalf("%d mismatches reported, first: %+v", counts[OutcomeMismatch], mismatches[0].Diffs)
	}
	if counts[OutcomeNoiseOnly] != 1000 {
		t.Fatalf("outcomes %v, want 1000 noise_only", counts)
	}
	var fields []string
	for _, f := range noise.Fields() {
		if f.Noise {
			fields = append(fields, f.Template)
		}
	}
	if got := strings.Join(fields, " "); got != "body.event_id body.received_at" {
		t.Fatalf("noise fields %q, want body.event_id body.received_at", got)
	}
}

func TestNoiseDoesNotHideInjectedFaults(t *testing.T) {
	tests := []struct {
		name  string
		fault func(string, [][2]string, int) (string, [][2]string, int)
		want  string
	}{
		{"changed business rule", func(b string, h [][2]string, s int) (string, [][2]string, int) {
			return strings.Replace(b, `"status":"accepted"`, `"status":"rejected"`, 1), h, s
		}, "value body.status"},
		{"rounding", func(b string, h [][2]string, s int) (string, [][2]string, int) {
			return strings.Replace(b, `"amount":19.99`, `"amount":20.0`, 1), h, s
		}, "value body.amount"},
		{"missing header", func(b string, h [][2]string, s int) (string, [][2]string, int) {
			return b, h[:1], s
		}, "missing header.Cache-Control"},
		{"different status", func(b string, h [][2]string, s int) (string, [][2]string, int) {
			return b, h, 200
		}, "value status"},
		{"reordered array items", func(b string, h [][2]string, s int) (string, [][2]string, int) {
			return strings.Replace(b, `[{"sku":"a","qty":1},{"sku":"b","qty":2}]`, `[{"sku":"b","qty":2},{"sku":"a","qty":1}]`, 1), h, s
		}, "order body.items"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := MustCompile(Rules{})
			noise := NewNoise(NoiseConfig{})
			start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
			counts, mismatches := shadow(c, noise, &fakeImpl{now: start}, &fakeImpl{now: start, fault: tt.fault}, 300)
			if counts[OutcomeMismatch] != 300 {
				t.Fatalf("outcomes %v, want 300 mismatches", counts)
			}
			for _, r := range mismatches {
				var got []string
				for _, d := range r.Diffs {
					if !d.Noise {
						got = append(got, string(d.Kind)+" "+d.Path)
					} else if d.Template != "body.event_id" && d.Template != "body.received_at" {
						t.Fatalf("%s flagged as noise", d.Path)
					}
				}
				if fmt.Sprint(got) != "["+tt.want+"]" {
					t.Fatalf("real diffs %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func diffsAt(templates ...string) Result {
	var r Result
	for _, t := range templates {
		r.Diffs = append(r.Diffs, Diff{Path: t, Template: t, Kind: KindValue})
	}
	return r
}

func TestNoiseThresholds(t *testing.T) {
	n := NewNoise(NoiseConfig{})
	// 100 primary pairs: a differs in all, b in 30, c in 2 (under MinDiffs).
	for i := range 100 {
		var ts []string
		ts = append(ts, "body.a")
		if i%10 < 3 {
			ts = append(ts, "body.b")
		}
		if i < 2 {
			ts = append(ts, "body.c")
		}
		n.Learn(diffsAt(ts...))
	}
	// 100 comparisons: a and b differ every time, c in 2.
	for i := range 100 {
		ts := []string{"body.a", "body.b"}
		if i < 2 {
			ts = append(ts, "body.c")
		}
		r := diffsAt(ts...)
		n.Classify(&r, nil)
	}
	tests := []struct {
		template string
		want     bool
	}{
		{"body.a", true},  // differs as often between primaries as against the candidate
		{"body.b", false}, // 100 % against 30 %: beyond the relative threshold
		{"body.c", false}, // too few self-differences to be trusted
		{"body.d", false}, // never seen
	}
	for _, tt := range tests {
		if got := n.IsNoise(tt.template); got != tt.want {
			t.Errorf("IsNoise(%s) = %v, want %v", tt.template, got, tt.want)
		}
	}
	r := diffsAt("body.a", "body.b")
	if o := n.Classify(&r, nil); o != OutcomeMismatch || !r.Diffs[0].Noise || r.Diffs[1].Noise {
		t.Fatalf("Classify = %s, %+v", o, r.Diffs)
	}
	r = diffsAt("body.a")
	if o := n.Classify(&r, nil); o != OutcomeNoiseOnly {
		t.Fatalf("Classify(noise only) = %s", o)
	}
	r = diffsAt("body.c")
	self := diffsAt("body.c")
	if o := n.Classify(&r, &self); o != OutcomeNoiseOnly {
		t.Fatalf("Classify with self-evidence = %s", o)
	}
	r = Result{}
	if o := n.Classify(&r, nil); o != OutcomeMatch {
		t.Fatalf("Classify(equal) = %s", o)
	}
	r = Result{Diffs: diffsAt("body.a").Diffs, Dropped: 1}
	if o := n.Classify(&r, nil); o != OutcomeMismatch {
		t.Fatalf("Classify(dropped) = %s", o)
	}
	fields := n.Fields()
	if len(fields) != 3 || fields[0].Template != "body.a" || !fields[0].Noise || fields[1].Template != "body.b" || fields[1].Noise {
		t.Fatalf("Fields = %+v", fields)
	}
}

func TestNoiseBoundedAndSampling(t *testing.T) {
	n := NewNoise(NoiseConfig{MaxPaths: 10, Warmup: 5, Every: 10})
	for i := range 100 {
		n.Learn(diffsAt(fmt.Sprintf("body.k%d", i)))
		r := diffsAt(fmt.Sprintf("body.r%d", i))
		n.Classify(&r, nil)
	}
	n.mu.Lock()
	tracked := len(n.paths)
	n.mu.Unlock()
	if tracked > 10 || len(n.Fields()) > 10 {
		t.Fatalf("tracking %d paths, want at most 10", tracked)
	}
	yes := 0
	for range 105 {
		if n.Sample() {
			yes++
		}
	}
	if yes != 5+10 { // 5 warm-up, then the 10th, 20th, ... 100th
		t.Fatalf("Sample said yes %d times, want 15", yes)
	}

	// Settled: one in SettledEvery after SettleAfter requests.
	s := NewNoise(NoiseConfig{Warmup: 5, Every: 10, SettleAfter: 100, SettledEvery: 50})
	var at []int
	for i := 1; i <= 300; i++ {
		if s.Sample() {
			at = append(at, i)
		}
	}
	want := []int{1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 150, 200, 250, 300}
	if !slices.Equal(at, want) {
		t.Fatalf("sampled requests %v, want %v", at, want)
	}
}

func TestNoiseConcurrent(t *testing.T) {
	n := NewNoise(NoiseConfig{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				n.Learn(diffsAt("body.a", fmt.Sprintf("body.g%d", g)))
				r := diffsAt("body.a")
				n.Classify(&r, nil)
				_ = n.IsNoise("body.a")
				if i%50 == 0 {
					_ = n.Fields()
				}
			}
		})
	}
	wg.Wait()
	if n.Pairs() != 1600 || !n.IsNoise("body.a") {
		t.Fatalf("pairs %d, IsNoise(body.a) %v", n.Pairs(), n.IsNoise("body.a"))
	}
}
