// Package compare decides whether two HTTP responses to the same request
// say the same thing: the status, a chosen set of headers and the body —
// structurally for JSON (paths, types, values), as normalised text
// otherwise — under per-route ignore and normalise rules. It also learns
// noise the way Diffy does, from the primary side answering the same
// request twice, and redacts secrets from whatever it shows.
//
// Paths name what differs. A concrete path points at one value
// (`body.items[3].price`); its template replaces every array index with
// [*] (`body.items[*].price`) so the same field in different elements
// groups together. Headers are `header.<Canonical-Name>`, the status is
// `status`, and a non-JSON body is `body`. Object keys that are not plain
// identifiers are quoted: `body["a.b"]`.
//
// The package is pure: no goroutines, no I/O. A Comparator is immutable
// and safe for concurrent use; a Noise learner is safe for concurrent use.
package compare
