// Package layout holds no code. Its tests keep README.md true: they enforce
// which of the module's packages may import which (the layout), that the
// metrics table names the metrics the code registers, that the Config
// reference names config.yaml's keys with its defaults, that the
// Layout table names every package, and that the request path names only
// what the code declares.
//
//   - routes, ported/…, legacy-passthrough and compare never import
//     proxy/…: the front door and its control plane depend on them, not
//     the other way round;
//   - ported/… and legacy-passthrough never import each other: a ported
//     handler and the forwarder meet only in the front door, through
//     routes.Handler;
//   - compare imports only internal/…: it is the pure comparison engine
//     that routes (to validate a route's rules), the shadow side and the
//     offline compare all use;
//   - internal/… imports only internal/…: its helpers are leaves;
//   - proxy/control (the control plane) never imports proxy (the front
//     door), which serves the runtimes the control plane publishes;
//   - proxy/canary, proxy/capture, proxy/shadow and proxy/shadowreport
//     import neither: both use them.
//
// Test files count too: a test that reached across would hide the same
// coupling.
package layout
