// Package shadow runs the candidate side of shadowed requests off the
// client's path and compares what both sides answered — and what they
// published — recording the outcome in a shadowreport.Collector.
//
// The front door calls Engine.Begin before the primary side runs and
// Job.Serve to run it. Begin decides, without blocking, whether the request
// is copied at all: a sampled request is skipped (and counted) when the
// candidate may not see its method, when its declared body is over the
// route's cap, or when the pool has no free slot. A slot is reserved up
// front, so a job once begun always finds room in the queue.
//
// Nothing here delays the client or changes what it gets:
//
//   - The request head is copied (Request.CopyTo) before the primary runs.
//     Its body is copied while the primary reads it, through a tee that
//     keeps up to the cap: the primary consumes the stream exactly as it
//     would alone, and nothing reads on its behalf. A body the primary did
//     not read to the end, or one over the cap, means the copy is dropped
//     (skipped: body_unread, body_too_large).
//   - A Go primary's answer is buffered; it is copied with Response.CopyTo
//     after the handler returns. A legacy primary's body streams to the
//     client after the handler returns, and fasthttp offers no way to wrap
//     a response's body stream in place (SetBodyStream closes the old one).
//     The forwarder therefore reports the body itself (ServeObserved): each
//     piece read for the client is appended to the job's copy, up to the
//     cap, and the job is queued when the stream closes, i.e. once the
//     client has the whole answer. A legacy handler that cannot report its
//     body is served through a scratch RequestCtx whose stream the client
//     reads through a tee — a second context and a second stream layer
//     per request, which cost about as much as the comparison itself.
//   - Candidates run on a pool of workers with their own RequestCtx. A Go
//     candidate is the handler built with shadow dependencies (its sink
//     records instead of publishing); a legacy candidate is the shadow
//     forwarder, with its own connection pool and timeouts.
//
// Noise is learned, on the Noise learner's sample, by asking the primary
// side a second time where that is free of side effects: the shadow
// forwarder for safe methods, the Go handler's shadow twin for a Go
// primary. For an unsafe method with a legacy primary the monolith is never
// asked twice (its intake would forward the event twice); the Go
// candidate's shadow twin is asked twice instead, and a path that differs
// between its own two answers counts as noise.
package shadow
