// Package shadowreport keeps what the shadow and canary modes learn about
// each route — traffic per side, comparison outcomes, match rate over
// time, latency per side, noise fields and the differing paths with
// side-by-side examples — and turns it into a flip verdict, an
// auto-demotion signal, Prometheus counters, a JSONL diff log and an HTML
// report with a JSON twin.
//
// Memory is bounded everywhere: fixed-bucket latency histograms, a ring of
// per-minute buckets, a capped store of differing paths with a few
// examples each, a space-saving top-K of unmatched paths, and a diff log
// behind a bounded queue that drops and counts when full. Each route has
// its own Collector with its own lock; nothing on the request path takes a
// lock shared between routes.
package shadowreport
