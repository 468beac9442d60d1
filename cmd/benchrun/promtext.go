package main

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

// series is one scrape of a Prometheus text page: sample value by the series
// as written ("name{labels}"). Enough for the few series the bench reads.
type series map[string]float64

func scrape(url string) (series, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return parseSeries(resp.Body)
}

func parseSeries(r io.Reader) (series, error) {
	out := series{}
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

// hist is a Prometheus histogram's cumulative buckets.
type hist struct {
	le     []float64 // upper bounds, ascending, +Inf last
	counts []float64 // cumulative
	count  float64
	sum    float64
}

// histogram reads the unlabelled histogram name from s.
func (s series) histogram(name string) hist {
	var h hist
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
		h.le = append(h.le, x.le)
		h.counts = append(h.counts, x.n)
	}
	h.count, h.sum = s[name+"_count"], s[name+"_sum"]
	return h
}

// minus is h−o, bucket by bucket: what was observed between two scrapes.
func (h hist) minus(o hist) hist {
	d := hist{le: h.le, counts: make([]float64, len(h.counts)), count: h.count - o.count, sum: h.sum - o.sum}
	for i := range h.counts {
		d.counts[i] = h.counts[i]
		if i < len(o.counts) {
			d.counts[i] -= o.counts[i]
		}
	}
	return d
}

// quantile is the upper bound of the bucket holding quantile q (what a
// bucketed histogram can say without interpolating); NaN when empty.
func (h hist) quantile(q float64) float64 {
	if h.count <= 0 {
		return math.NaN()
	}
	rank := q * h.count
	for i, c := range h.counts {
		if c >= rank {
			return h.le[i]
		}
	}
	return math.Inf(1)
}
