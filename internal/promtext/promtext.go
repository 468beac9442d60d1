// Package promtext reads the few series the benchmark and soak drivers need
// from a Prometheus text page: plain samples and unlabelled histograms.
// Not a general exposition-format parser.
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Series is one scrape of a Prometheus text page: sample value by the series
// as written ("name{labels}"). Enough for the few series the bench reads.
type Series map[string]float64

// Scrape GETs url and parses it.
func Scrape(url string) (Series, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return Parse(resp.Body)
}

// Parse reads a text page.
func Parse(r io.Reader) (Series, error) {
	out := Series{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// Hist is a Prometheus histogram's cumulative buckets.
type Hist struct {
	Le     []float64 // upper bounds, ascending, +Inf last
	Counts []float64 // cumulative
	Count  float64
	Sum    float64
}

// Histogram reads the unlabelled histogram name from s.
func (s Series) Histogram(name string) Hist {
	var h Hist
	type b struct{ le, n float64 }
	var bs []b
	prefix := name + `_bucket{le="`
	for k, v := range s {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(rest, `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, b{le, v})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, x := range bs {
		h.Le = append(h.Le, x.le)
		h.Counts = append(h.Counts, x.n)
	}
	h.Count, h.Sum = s[name+"_count"], s[name+"_sum"]
	return h
}

// Minus is h−o, bucket by bucket: what was observed between two scrapes.
func (h Hist) Minus(o Hist) Hist {
	d := Hist{Le: h.Le, Counts: make([]float64, len(h.Counts)), Count: h.Count - o.Count, Sum: h.Sum - o.Sum}
	for i := range h.Counts {
		d.Counts[i] = h.Counts[i]
		if i < len(o.Counts) {
			d.Counts[i] -= o.Counts[i]
		}
	}
	return d
}

// Plus is h+o, bucket by bucket; a zero h takes o's bounds.
func (h Hist) Plus(o Hist) Hist {
	if h.Le == nil {
		return Hist{Le: o.Le, Counts: append([]float64(nil), o.Counts...), Count: o.Count, Sum: o.Sum}
	}
	d := Hist{Le: h.Le, Counts: append([]float64(nil), h.Counts...), Count: h.Count + o.Count, Sum: h.Sum + o.Sum}
	for i := range d.Counts {
		if i < len(o.Counts) {
			d.Counts[i] += o.Counts[i]
		}
	}
	return d
}

// Quantile is the upper bound of the bucket holding quantile q (what a
// bucketed histogram can say without interpolating); NaN when empty.
func (h Hist) Quantile(q float64) float64 {
	if h.Count <= 0 {
		return math.NaN()
	}
	rank := q * h.Count
	for i, c := range h.Counts {
		if c >= rank {
			return h.Le[i]
		}
	}
	return math.Inf(1)
}
