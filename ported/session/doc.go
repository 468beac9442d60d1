// Package session reads the legacy monolith's PHP sessions from Go, so a
// ported handler knows who the user is without a second login.
//
// A Reader finds the session cookie as PHP does, checks the id has the shape
// PHP issues (session.sid_length, sid_bits_per_character), reads the data
// from the same store PHP writes to (files, phpredis, php-memcached) within
// a timeout, and decodes it with the same serialize handler (php_serialize,
// php, php_binary) into a read-only tree. The decoder refuses objects and
// references and bounds size, depth and element count.
//
// The rules: Go never creates, adopts, regenerates or extends a session id.
// Anything PHP would not resume is ErrNoSession, never an error page; a
// store that does not answer is ErrUnavailable, never "logged out". Writing
// back is opt-in per handler and takes PHP's own lock. Session values never
// print: Value, Array and Session format and marshal as "[redacted]".
package session
