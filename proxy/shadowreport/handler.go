package shadowreport

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/strangler-proxy/strangler/compare"
	"github.com/strangler-proxy/strangler/routes"
)

//go:embed report.html.tmpl
var reportTemplate string

// Handler serves the report: HTML by default, JSON with ?format=json or an
// Accept header preferring application/json. ?route=NAME narrows the page
// to one route (the overview still lists every route).
type Handler struct {
	src   Source
	stats *Stats
	tmpl  *template.Template
}

// NewHandler returns the report handler for the admin listener.
func NewHandler(src Source, s *Stats) *Handler {
	return &Handler{src: src, stats: s, tmpl: template.Must(template.New("report").Funcs(funcs).Parse(reportTemplate))}
}

// ServeHTTP renders the report.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := Build(h.src, h.stats)
	if r.URL.Query().Get("format") == "json" || wantsJSON(r.Header.Get("Accept")) {
		writeJSON(w, rep)
		return
	}
	var buf bytes.Buffer
	if err := h.tmpl.Execute(&buf, newPage(rep, r.URL.Query().Get("route"))); err != nil {
		http.Error(w, "render report: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(buf.Bytes())
}

// WriteHTML renders the report page to w: every route in detail, or only
// the route named (the overview still lists every route). It is what
// `strangler compare` writes to its -out file.
func (h *Handler) WriteHTML(w io.Writer, route string) error {
	var buf bytes.Buffer
	if err := h.tmpl.Execute(&buf, newPage(Build(h.src, h.stats), route)); err != nil {
		return fmt.Errorf("render report: %w", err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// JSON returns a handler that always serves the report as JSON.
func (h *Handler) JSON() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, Build(h.src, h.stats)) })
}

func wantsJSON(accept string) bool {
	return strings.Contains(accept, "application/json") && !strings.Contains(accept, "text/html")
}

func writeJSON(w http.ResponseWriter, rep Report) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(rep) // the client is gone if this fails
}

// page is the template's view of a Report.
type page struct {
	Report
	Detail []routeView // the routes shown in detail
	Filter string
}

type routeView struct {
	*RouteReport
	Spark sparkline
}

func newPage(rep Report, only string) page {
	p := page{Report: rep, Filter: only}
	for i := range p.Routes {
		rr := &p.Routes[i]
		if only != "" && rr.Name != only {
			continue
		}
		p.Detail = append(p.Detail, routeView{RouteReport: rr, Spark: newSparkline(rr.Stats.Timeline, 1-rr.Verdict.Thresholds.TargetMismatchRate)})
	}
	return p
}

// sparkline is the match rate over time as SVG path data.
type sparkline struct {
	Width, Height float64
	Line          string // path data, broken where no comparison happened
	Dots          []dot
	ThresholdY    float64
	Lo            string // the rate at the bottom edge
	Empty         bool
}

type dot struct {
	X, Y  float64
	Title string
}

func newSparkline(tl []MinuteStats, threshold float64) sparkline {
	s := sparkline{Width: 360, Height: 64, Empty: true}
	lo := threshold
	for _, m := range tl {
		if m.Compared > 0 {
			lo = math.Min(lo, m.MatchRate)
			s.Empty = false
		}
	}
	// Zoom on the interesting band: 99 % and 99.9 % must not look alike.
	lo = math.Max(0, lo-0.005)
	y := func(rate float64) float64 { return s.Height - (rate-lo)/(1-lo)*s.Height }
	s.ThresholdY, s.Lo = math.Round(y(threshold)*10)/10, Percent(lo)
	var b strings.Builder
	pen := false
	for i, m := range tl {
		if m.Compared == 0 {
			pen = false
			continue
		}
		x := float64(i) * s.Width / float64(max(len(tl)-1, 1))
		cmd := "L"
		if !pen {
			cmd = "M"
		}
		x, yy := math.Round(x*10)/10, math.Round(y(m.MatchRate)*10)/10
		fmt.Fprintf(&b, "%s%.1f %.1f ", cmd, x, yy)
		pen = true
		s.Dots = append(s.Dots, dot{X: x, Y: yy, Title: fmt.Sprintf("%s UTC: %s of %d", m.Start.Format("15:04"), Percent(m.MatchRate), m.Compared)})
	}
	s.Line = strings.TrimSpace(b.String())
	return s
}

var funcs = template.FuncMap{
	"pct":    Percent,
	"ms":     Millis,
	"clock":  func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"hhmmss": func(t time.Time) string { return t.UTC().Format("15:04:05") },
	"methods": func(m []string) string {
		return strings.Join(m, ",")
	},
	"isShadow": func(m routes.Mode) bool { return m == routes.ModeShadow },
	"isCanary": func(m routes.Mode) bool { return m == routes.ModeCanary },
	"fnum":     func(f *float64) float64 { return *f },
	"kinds": func(k map[compare.Kind]uint64) string {
		var parts []string
		for _, kind := range compare.Kinds() {
			if n := k[kind]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", kind, n))
			}
		}
		return strings.Join(parts, ", ")
	},
	"sameTemplate": func(d compare.Diff, t string) bool { return d.Template == t },
	"headerLines": func(h [][2]string) string {
		var b strings.Builder
		for _, kv := range h {
			b.WriteString(kv[0] + ": " + kv[1] + "\n")
		}
		return b.String()
	},
}
