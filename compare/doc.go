// Package compare decides whether two HTTP responses to the same request
// say the same thing: the status, a chosen set of headers and the body —
// for JSON by value and by representation (spelling, key order, escaping,
// case, whitespace are differences of their own kinds), as text otherwise —
// under per-route ignore, normalise and accept rules. Noise comes from the
// legacy side only: a Profile of its answers across requests classifies
// generated and clock values (compared by shape and time window instead),
// and for safe methods a Noise learner discounts paths where the legacy
// side differs from itself on a twin call, Diffy's way. It also redacts
// secrets from whatever it shows.
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
