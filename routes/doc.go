// Package routes owns the route table: its config schema (the `routes` and
// `all_legacy` keys of config.yaml), validation with messages that name the
// route, field and fix, compilation into an immutable Table matched by
// method, host and path, the Live pointer requests read it through, and the
// Watcher that reloads it when the file changes. It is the only part of the
// configuration that can change while the proxy runs.
package routes
