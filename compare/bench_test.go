package compare

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// campaignList2KiB is a realistic GET /api/v1/campaigns answer of about
// 2 KiB: 8 campaigns with nested budgets and country lists.
func campaignList2KiB(tb testing.TB, mutate func(i int, c map[string]any)) []byte {
	tb.Helper()
	var list []map[string]any
	for i := range 8 {
		c := map[string]any{
			"id": fmt.Sprintf("cmp_%06d", 40+i), "advertiser_id": fmt.Sprintf("adv_%04d", 400+i),
			"name": fmt.Sprintf("Spring Sale %d", i), "status": "active",
			"countries": []string{"DE", "FR", "GB", "US"},
			"starts_at": "2025-01-01T00:00:00Z", "ends_at": "2028-01-01T00:00:00Z",
			"budget": map[string]any{"amount_minor": 4580142000 + i, "currency": "EUR"},
		}
		if mutate != nil {
			mutate(i, c)
		}
		list = append(list, c)
	}
	b, err := json.Marshal(map[string]any{"data": list, "count": len(list), "country": "DE", "active": true})
	if err != nil {
		tb.Fatal(err)
	}
	if len(b) < 1900 || len(b) > 2300 {
		tb.Fatalf("body is %d bytes, want about 2 KiB", len(b))
	}
	return b
}

// BenchmarkDiff2KiB is the comparator's cost per 2 KiB JSON pair (target
// ≤ 20 µs): an equal pair (the common case), the same data spelled as a Go
// port would, and a pair with three value differences. cpu-ns/op is the
// whole process's CPU time per pair (getrusage), the collector's included:
// on the shared machine it moves less than ns/op with the other load.
func BenchmarkDiff2KiB(b *testing.B) {
	h := [][2]string{{"Content-Type", "application/json"}, {"Cache-Control", "max-age=60"}, {"Vary", "Accept-Encoding"}, {"Date", "x"}, {"Server", "nginx"}}
	p := campaignList2KiB(b, nil)
	equal := campaignList2KiB(b, nil)
	differing := campaignList2KiB(b, func(i int, c map[string]any) {
		if i == 3 {
			c["status"] = "paused"
			c["budget"].(map[string]any)["currency"] = "USD"
			c["countries"] = []string{"DE", "FR", "GB"}
		}
	})
	// The same data from a Go struct: keys in declaration order, not
	// sorted, and numbers printed differently, as a port would answer:
	// 25 representation differences (key_order, format), each found and
	// rendered.
	equivalent := equivalentList(b, p)
	c := MustCompile(Rules{})
	for _, bc := range []struct {
		name string
		q    []byte
	}{{"identical", equal}, {"equivalent", equivalent}, {"differing", differing}} {
		b.Run(bc.name, func(b *testing.B) {
			pr := Response{Status: 200, Header: h, Body: p}
			cr := Response{Status: 200, Header: h, Body: bc.q}
			b.SetBytes(int64(len(p) + len(bc.q)))
			b.ReportAllocs()
			c0 := cpuTime()
			for b.Loop() {
				c.Diff(pr, cr)
			}
			b.ReportMetric(float64(cpuTime()-c0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// BenchmarkStdlibDecode2KiB is the baseline that motivated the tape
// parser: encoding/json decoding the same pair into `any` (UseNumber),
// before any comparing.
func BenchmarkStdlibDecode2KiB(b *testing.B) {
	p := campaignList2KiB(b, nil)
	b.SetBytes(int64(2 * len(p)))
	b.ReportAllocs()
	for b.Loop() {
		for range 2 {
			d := json.NewDecoder(bytes.NewReader(p))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkTapeParse2KiB is the tape parser alone on the same pair: what
// every comparison of two different bodies pays before comparing.
func BenchmarkTapeParse2KiB(b *testing.B) {
	p := campaignList2KiB(b, nil)
	t := getTape()
	defer putTape(t)
	b.SetBytes(int64(2 * len(p)))
	b.ReportAllocs()
	for b.Loop() {
		for range 2 {
			if err := t.parse(bytesView(p)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

type goCampaign struct {
	ID           string   `json:"id"`
	AdvertiserID string   `json:"advertiser_id"`
	Name         string   `json:"name"`
	Status       string   `json:"status"`
	Countries    []string `json:"countries"`
	StartsAt     string   `json:"starts_at"`
	EndsAt       string   `json:"ends_at"`
	Budget       struct {
		AmountMinor json.Number `json:"amount_minor"`
		Currency    string      `json:"currency"`
	} `json:"budget"`
}

func equivalentList(tb testing.TB, primary []byte) []byte {
	tb.Helper()
	var in struct {
		Data    []goCampaign `json:"data"`
		Count   int          `json:"count"`
		Country string       `json:"country"`
		Active  bool         `json:"active"`
	}
	d := json.NewDecoder(bytes.NewReader(primary))
	d.UseNumber()
	if err := d.Decode(&in); err != nil {
		tb.Fatal(err)
	}
	for i := range in.Data {
		in.Data[i].Budget.AmountMinor += ".0"
	}
	out, err := json.Marshal(in)
	if err != nil {
		tb.Fatal(err)
	}
	if bytes.Equal(out, primary) {
		tb.Fatal("equivalent body is byte-identical")
	}
	return out
}

// BenchmarkProfile2KiB is what the noise profile adds per 2 KiB pair: the
// legacy answer observed (parsed and walked), then the pair compared with
// the profile's treatment, on a pair with a generated id and a clock value
// that differ (the intake's shape, inside a campaign list).
func BenchmarkProfile2KiB(b *testing.B) {
	h := [][2]string{{"Content-Type", "application/json"}}
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	body := func(id string, ms int) []byte {
		list := campaignList2KiB(b, nil)
		return append([]byte(`{"event_id":"`+id+`","received_at":"`+at.Add(time.Duration(ms)*time.Millisecond).Format("2006-01-02T15:04:05.000Z")+`","list":`), append(list, '}')...)
	}
	p := NewProfile(NoiseConfig{})
	w := Window{Start: at, End: at.Add(10 * time.Millisecond)}
	r := rand.New(rand.NewPCG(1, 1))
	for range 30 {
		p.Observe(Response{Header: h, Body: body(uuid4(r), 3)}, "body", w, nil)
	}
	c := MustCompile(Rules{})
	pr := Response{Status: 200, Header: h, Body: body(uuid4(r), 3)}
	cr := Response{Status: 200, Header: h, Body: body(uuid4(r), 4)}
	o := DiffOptions{Profile: p, Windows: [2]Window{w, w}}
	b.Run("observe", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Observe(pr, "body", w, nil)
		}
	})
	b.Run("diff", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.DiffWith(pr, cr, o)
		}
	})
}

// cpuTime is this process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
