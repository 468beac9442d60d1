package routes

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/strangler-proxy/strangler/compare"
)

// Mode says who answers a route's requests.
type Mode string

// Route modes, in the order a route usually moves through them.
const (
	// ModeLegacy forwards to the monolith unchanged.
	ModeLegacy Mode = "legacy"
	// ModeShadow answers from shadow.primary and runs a sampled copy on the
	// other side for comparison.
	ModeShadow Mode = "shadow"
	// ModeCanary sends canary.percent of sticky keys to the Go handler and
	// the rest to legacy.
	ModeCanary Mode = "canary"
	// ModePorted answers from the Go handler.
	ModePorted Mode = "ported"
)

// modes lists the valid modes in lifecycle order (for messages and counts).
var modes = [...]Mode{ModeLegacy, ModeShadow, ModeCanary, ModePorted}

// Side names one of the two implementations of a route.
type Side string

// Sides of a shadowed route.
const (
	SideLegacy Side = "legacy"
	SidePorted Side = "ported"
)

// Defaults applied by Compile.
const (
	// DefaultShadowSamplePercent is used when shadow.sample_percent is unset.
	DefaultShadowSamplePercent = 100.0
	// DefaultShadowTimeout is the deadline of a shadow copy's calls when
	// shadow.timeout is unset.
	DefaultShadowTimeout = 5 * time.Second
	// DefaultSticky is the canary sticky key when canary.sticky is unset.
	DefaultSticky = "ip"
	// DefaultShadowMaxBodyBytes caps request and response bodies of a
	// shadowed exchange when shadow.max_body_bytes is unset.
	DefaultShadowMaxBodyBytes = 1 << 20
)

// Config is the live-reloadable part of config.yaml: the top-level keys
// `all_legacy` and `routes`. Every other top-level key belongs to another
// package and cannot change while the process runs.
type Config struct {
	// AllLegacy is the kill switch: when true every request goes to the
	// monolith whatever its route's mode says. Routes are still matched so
	// metrics and logs can name them. Zero value (false): modes apply.
	AllLegacy bool `mapstructure:"all_legacy"`
	// Routes are matched by method, host and path. A request no route
	// matches goes to legacy. Empty: everything goes to legacy.
	Routes []RouteConfig `mapstructure:"routes"`
}

// RouteConfig is one entry of `routes:`.
type RouteConfig struct {
	// Name identifies the route in metrics, logs and the admin API.
	// Required, unique, [a-z0-9_.-], at most 64 characters.
	Name string `mapstructure:"name"`
	// Methods the route matches, case-insensitive (stored upper-case), each
	// one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE, CONNECT.
	// Empty: every method. HEAD is not implied by GET. A route listing a
	// method wins over a route without methods on the same host and path.
	Methods []string `mapstructure:"methods"`
	// Path is matched against the decoded, normalised request path.
	// Required. Segments are literal (`/api/v1/events`), a whole-segment
	// parameter matching any non-empty segment (`/campaigns/{id}`, read
	// with Param(ctx, "id")), or a trailing catch-all `*` as the last
	// segment (`/static/*` matches `/static/` and everything below it, not
	// `/static`; the rest of the path, without its leading slash, is
	// Param(ctx, CatchAllParam)). A trailing slash is significant: `/a/`
	// does not match `/a`. Where several routes match, segment by segment
	// from the left a literal beats a parameter, which beats `*`.
	Path string `mapstructure:"path"`
	// Host restricts the route to one host name, compared case-insensitively
	// and without the port. Empty: any host. A route with a host wins over
	// hostless routes for requests to that host.
	Host string `mapstructure:"host"`
	// Mode is legacy, shadow, canary or ported. Empty: legacy.
	Mode Mode `mapstructure:"mode"`
	// Handler names the Go handler in the Registry. Required unless Mode is
	// legacy; when set on a legacy route it must still be registered, so a
	// later flip to another mode cannot fail on a typo.
	Handler string `mapstructure:"handler"`
	// Fallback lets a ported or canary route answer from legacy when its Go
	// handler returns an error on a safe method (GET, HEAD, OPTIONS,
	// TRACE). Zero value (false): the handler's error is the answer.
	Fallback bool `mapstructure:"fallback"`
	// Shadow configures mode shadow. Nil: defaults (legacy primary, 100%
	// sampled). May stay in place while the route is in another mode.
	Shadow *ShadowConfig `mapstructure:"shadow"`
	// Canary configures mode canary, where it is required (for percent).
	// May stay in place while the route is in another mode.
	Canary *CanaryConfig `mapstructure:"canary"`
	// Budgets demote the route to legacy when its Go side misbehaves (shadow,
	// canary and ported modes). Nil: no budget, never demoted.
	Budgets *Budgets `mapstructure:"budgets"`
	// Verdict sets the thresholds of the report's "ready to flip" verdict.
	// Nil: the defaults (DefaultVerdict*).
	Verdict *Verdict `mapstructure:"verdict"`
	// Capture writes a sample of the route's requests to a file for offline
	// comparison runs (`strangler compare`), in any mode. Nil: no capture.
	Capture *CaptureConfig `mapstructure:"capture"`
}

// ShadowConfig configures a route in mode shadow. After Compile a route's
// Shadow has every default filled in (SamplePercent is never nil).
type ShadowConfig struct {
	// Primary is the side that answers the client: legacy or ported.
	// Empty: legacy (the Go handler is the candidate).
	Primary Side `mapstructure:"primary"`
	// SamplePercent of requests copied to the candidate, in (0, 100].
	// Nil (unset): DefaultShadowSamplePercent. An explicit 0 is refused: to
	// stop shadowing change the mode.
	SamplePercent *float64 `mapstructure:"sample_percent"`
	// Ignore lists response parts left out of the comparison: `status`,
	// `header.<Name>`, `body` (the whole body) or `body.<json path>`
	// (`body.event_id`, `body.items[*].sku`, `body["a.b"]`); a path ignores
	// everything below it. Empty: compare everything (noise is learned).
	Ignore []string `mapstructure:"ignore"`
	// Headers are the response headers compared, case-insensitive. Empty:
	// compare.DefaultHeaders (Content-Type, Location, Cache-Control,
	// Set-Cookie by name and attributes, Content-Encoding, Vary, Allow,
	// Retry-After).
	Headers []string `mapstructure:"headers"`
	// Normalise rewrites values on both sides before they are compared.
	// Empty: none.
	Normalise []Normalise `mapstructure:"normalise"`
	// IgnoreArrayOrder compares JSON arrays as multisets. Zero value
	// (false): order matters and a reordering is reported at the array.
	IgnoreArrayOrder bool `mapstructure:"ignore_array_order"`
	// NumericTolerance is the largest absolute difference under which two
	// JSON numbers are equal (0.005 accepts 1.234 against 1.23). Zero:
	// numbers must be equal as decimals.
	NumericTolerance float64 `mapstructure:"numeric_tolerance"`
	// MaxBodyBytes caps what is copied of a request body and captured of
	// each response body. A request whose body is larger is not shadowed,
	// and a comparison with a larger response is dropped (both counted as
	// skipped: body_too_large, response_too_large), since half a body
	// compares as garbage. Zero: DefaultShadowMaxBodyBytes.
	MaxBodyBytes int `mapstructure:"max_body_bytes"`
	// Accept lists differences a person has looked at and accepted: each
	// names a path (as in Ignore, or `published…`), a kind of difference
	// (value, type, missing, extra, order, format, escape, case, key_order,
	// whitespace, nondeterministic, incomplete) and a reason, shown on the
	// report. They are still found and shown, and count as explained.
	// Empty: every difference counts.
	Accept []compare.Accept `mapstructure:"accept"`
	// LegacyEventsFile is the JSONL file where the monolith appends every
	// event it forwards (its STRANGLER_EVENTS_FILE), absolute or relative
	// to the proxy's working directory. What the Go side published (or
	// would have, as a candidate) is compared with the line the legacy
	// side wrote for the same request, under the path `published`. Empty,
	// with no LegacyEventsTopic either: when the Go side publishes, the
	// report says its side effects were not compared.
	LegacyEventsFile string `mapstructure:"legacy_events_file"`
	// LegacyEventsTopic reads the legacy side's messages from the Kafka
	// topic they reach (kafka.brokers), instead of a file. Nil: none.
	LegacyEventsTopic *LegacyTopic `mapstructure:"legacy_events_topic"`
	// KeyPath is where an answer and a published message hold the key that
	// ties the message to its request (a JSON path such as event_id or
	// data.id). Empty: DefaultKeyPath.
	KeyPath string `mapstructure:"key_path"`

	// cmp is the compiled comparison, set by Compile.
	cmp *compare.Comparator
	// AllowUnsafe lets a legacy candidate (primary ported) be called for
	// methods that are not safe (POST, PUT, ...), i.e. run the request
	// twice. Zero value (false): legacy candidates see only safe methods.
	// Ignored when Primary is legacy.
	AllowUnsafe bool `mapstructure:"allow_unsafe"`
	// Timeout is the deadline of each call a shadow copy makes (the
	// candidate, the noise sample's second call). Past it the call is
	// abandoned: the comparison counts as an error, the copy's pool slot
	// and worker are freed at once, and the call finishes on its own,
	// counted until then (proxy/shadow's deadline.go). Zero:
	// DefaultShadowTimeout.
	Timeout time.Duration `mapstructure:"timeout"`
}

// LegacyTopic is a Kafka topic the legacy side's published messages reach,
// read by a consumer group of Strangler's own.
type LegacyTopic struct {
	// Topic to consume. Required.
	Topic string `mapstructure:"topic"`
	// Group is the consumer group. Each instance needs its own (every
	// instance looks for the messages of its own requests). Empty:
	// "strangler-shadow-" + the host name.
	Group string `mapstructure:"group"`
	// Wait is how long a comparison waits for the legacy side's message to
	// arrive (the shipper's lag). Zero: DefaultLegacyTopicWait.
	Wait time.Duration `mapstructure:"wait"`
}

// CanaryConfig configures a route in mode canary. After Compile a route's
// Canary has every default filled in.
type CanaryConfig struct {
	// Percent of sticky keys sent to the Go handler, 0 to 100 in steps of
	// 0.1. Required in mode canary (nil is refused; 0 is valid).
	Percent *float64 `mapstructure:"percent"`
	// Sticky names the key hashed to pick a side, so a client stays on one:
	// `ip` (client address), `cookie:NAME` or `header:NAME`.
	// Empty: DefaultSticky (ip).
	Sticky string `mapstructure:"sticky"`
	// OverrideHeader, when a request carries it with value OverrideToken,
	// forces the Go side (for testers). Both set or both empty.
	// Empty: no override.
	OverrideHeader string `mapstructure:"override_header"`
	// OverrideToken is the secret value OverrideHeader must carry; at least
	// 16 characters. Never logged or shown by the admin API.
	OverrideToken string `mapstructure:"override_token"`
}

// Permille is Percent in tenths of a percent (0..1000), the unit canary
// decisions compare a hash against. 0 when Percent is nil.
func (c *CanaryConfig) Permille() int {
	if c == nil || c.Percent == nil {
		return 0
	}
	return int(*c.Percent*10 + 0.5)
}

// StickyKind says where a canary's sticky key comes from.
type StickyKind string

// Sticky key sources.
const (
	StickyIP     StickyKind = "ip"
	StickyCookie StickyKind = "cookie"
	StickyHeader StickyKind = "header"
)

// Sticky is a parsed canary.sticky.
type Sticky struct {
	Kind StickyKind
	// Name of the cookie or header; empty for StickyIP.
	Name string
}

// StickyKey parses Sticky (validated by Compile); empty means DefaultSticky.
func (c *CanaryConfig) StickyKey() Sticky {
	if c == nil {
		return Sticky{Kind: StickyIP}
	}
	s, err := ParseSticky(c.Sticky)
	if err != nil {
		return Sticky{Kind: StickyIP}
	}
	return s
}

// ParseSticky parses `ip`, `cookie:NAME` or `header:NAME`; "" is `ip`.
func ParseSticky(s string) (Sticky, error) {
	if s == "" || s == string(StickyIP) {
		return Sticky{Kind: StickyIP}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || (kind != string(StickyCookie) && kind != string(StickyHeader)) {
		return Sticky{}, fmt.Errorf("sticky %q is not ip, cookie:NAME or header:NAME", s)
	}
	if !isToken(name) {
		return Sticky{}, fmt.Errorf("sticky %q: %s name %q must be a non-empty token (letters, digits, !#$%%&'*+-.^_`|~)", s, kind, name)
	}
	return Sticky{Kind: StickyKind(kind), Name: name}, nil
}

// Decode reads the `all_legacy` and `routes` keys of v. It never reads the
// other top-level keys (they belong to other packages), and reports unknown
// keys inside routes and values of the wrong type, naming the route.
func Decode(v *viper.Viper) (Config, error) {
	in := map[string]any{}
	for _, k := range []string{"all_legacy", "routes"} {
		if v.IsSet(k) {
			in[k] = v.Get(k)
		}
	}
	var c Config
	d, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook,
			mapstructure.StringToTimeDurationHookFunc(),
		),
		ErrorUnused: true,
		Result:      &c,
	})
	if err != nil {
		return Config{}, fmt.Errorf("routes decoder: %w", err)
	}
	if err := d.Decode(in); err != nil {
		return Config{}, &ValidationError{Problems: decodeProblems(err, in["routes"])}
	}
	return c, nil
}

// durationHook refuses bare numbers for durations: mapstructure would read
// `timeout: 5` as 5ns.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return nil, fmt.Errorf("%v has no unit; write a duration such as \"5s\" or \"500ms\"", data)
	}
	return data, nil
}

var routeRefRE = regexp.MustCompile(`^routes\[(\d+)\]\.?(.*)$`)

// decodeProblems turns mapstructure's joined errors into one message per
// problem, naming the route by index and name and the field.
func decodeProblems(err error, rawRoutes any) []string {
	raw, _ := rawRoutes.([]any)
	var out []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var de *mapstructure.DecodeError
		if !errors.As(err, &de) {
			out = append(out, err.Error())
			return
		}
		msg := de.Unwrap().Error()
		m := routeRefRE.FindStringSubmatch(de.Name())
		if m == nil {
			out = append(out, fmt.Sprintf("%s: %s", de.Name(), msg))
			return
		}
		i, _ := strconv.Atoi(m[1])
		field := m[2]
		if strings.HasPrefix(msg, "has invalid keys") {
			msg = "unknown key(s) " + strings.TrimPrefix(msg, "has invalid keys: ") +
				"; valid keys: " + strings.Join(keysOf(field), ", ")
			if field != "" {
				msg = field + ": " + msg
			}
		} else if field != "" {
			msg = field + ": " + msg
		}
		out = append(out, fmt.Sprintf("%s: %s", routeRef(i, rawName(raw, i)), msg))
	}
	walk(err)
	return out
}

func rawName(raw []any, i int) string {
	if i < 0 || i >= len(raw) {
		return ""
	}
	m, ok := raw[i].(map[string]any)
	if !ok {
		return ""
	}
	s, _ := m["name"].(string)
	return s
}

// keysOf lists the mapstructure keys of the struct a decode error points at.
func keysOf(field string) []string {
	var t reflect.Type
	switch field {
	case "":
		t = reflect.TypeFor[RouteConfig]()
	case "shadow":
		t = reflect.TypeFor[ShadowConfig]()
	case "canary":
		t = reflect.TypeFor[CanaryConfig]()
	case "budgets":
		t = reflect.TypeFor[Budgets]()
	case "verdict":
		t = reflect.TypeFor[Verdict]()
	case "capture":
		t = reflect.TypeFor[CaptureConfig]()
	case "shadow.legacy_events_topic":
		t = reflect.TypeFor[LegacyTopic]()
	default:
		return nil
	}
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if k := t.Field(i).Tag.Get("mapstructure"); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// routeRef is how every message names a route: `routes[2] "campaign"`.
func routeRef(i int, name string) string {
	if name == "" {
		return fmt.Sprintf("routes[%d] (unnamed)", i)
	}
	return fmt.Sprintf("routes[%d] %q", i, name)
}

// ValidationError lists every problem found in a routes config, one
// message per problem naming the route, the field and the fix.
type ValidationError struct {
	Problems []string
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid routes config: " + e.Problems[0]
	}
	return fmt.Sprintf("invalid routes config (%d problems): %s", len(e.Problems), strings.Join(e.Problems, "; "))
}

// Problems returns the individual messages of a *ValidationError in err's
// chain, or err's message alone.
func Problems(err error) []string {
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve.Problems
	}
	return []string{err.Error()}
}
