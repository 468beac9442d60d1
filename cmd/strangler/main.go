// Command strangler runs the Strangler reverse proxy in front of a legacy
// monolith, routing each route to the monolith or to its Go port as
// config.yaml says.
//
//	strangler run [-config config.yaml]         serve until SIGTERM/SIGINT
//	strangler check [-against ADMIN_URL] FILE   validate a config, start nothing
//	strangler routes [-config config.yaml]      print the compiled route table
//	strangler spool [-config config.yaml]       print the spooled events as JSONL
//	strangler compare -capture F -route R       replay a capture, compare, report
//	strangler version
//
// `strangler COMMAND -h` prints that command's flags. Exit codes: 0 ok, 1 a
// finding (check found a problem, compare says not ready to flip), 2 a
// usage error or a command that could not do its job (run failed to start
// or stopped uncleanly, check could not read the file or reach the
// instance, compare could not replay).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/viper"

	"github.com/strangler-proxy/strangler/ported/spool"
	"github.com/strangler-proxy/strangler/routes"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes, the same for every command.
const (
	exitOK = 0
	// exitFinding: check found a problem in the config (or in what a
	// running instance would refuse), compare found the route not ready.
	exitFinding = 1
	// exitUsage: the command line is wrong.
	exitUsage = 2
	// exitRunError: the command could not do its job (run failed to start
	// or stopped uncleanly; check could not read the file or ask the
	// instance; compare could not replay).
	exitRunError = 2
)

const defaultConfig = "config.yaml"

// command is one of strangler's commands.
type command struct {
	name     string
	synopsis string // the arguments, as usage shows them
	summary  string
	run      func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "[-config FILE]", "serve until SIGTERM or SIGINT", runCmd},
		{"check", "[-against ADMIN_URL] [-config] FILE", "validate a config without starting anything; with -against, also what a running instance would refuse of it", checkCmd},
		{"routes", "[-config FILE]", "print the compiled route table", routesCmd},
		{"spool", "[-config FILE]", "print the events waiting in the spool (JSONL; safe while running)", spoolCmd},
		{"compare", "-capture FILE -route NAME [flags]", "replay a capture to the Go handler against its recorded legacy answers (-live: ask the monolith), write the report; exit 1 unless the route is ready to flip", compareCmd},
		{"version", "", "print the version", versionCmd},
	}
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "strangler: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: strangler COMMAND [flags]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n           %s\n", c.name, c.synopsis, c.summary)
	}
	fmt.Fprint(w, `
"strangler COMMAND -h" prints that command's flags.
Exit codes: 0 ok; 1 a finding (check found a problem, compare: not ready to flip);
2 a usage error, or the command could not do its job (run failed to start or
stopped uncleanly, check could not read the file or reach the instance,
compare could not replay).
`)
}

// flags is a command's flag set, with the command's usage for -h.
func flags(name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // parse reports errors itself, once
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "usage: strangler %s %s\n\n%s\n", name, synopsis, about)
		if hasFlags(fs) {
			fmt.Fprintln(w, "\nflags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// parse parses args into fs. On -h it prints the usage to stdout and
// returns exitOK; on an error it prints it and the usage to stderr and
// returns exitUsage; otherwise ok is true.
func parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK, false
	case err != nil:
		fmt.Fprintf(stderr, "strangler %s: %v\n", fs.Name(), err)
	default:
		return 0, true
	}
	fs.SetOutput(stderr)
	fs.Usage()
	return exitUsage, false
}

// configCmd is the shape of run, routes and spool: one -config flag.
func configCmd(name, about string, args []string, stdout, stderr io.Writer) (string, int, bool) {
	fs := flags(name, "[-config FILE]", about)
	path := fs.String("config", defaultConfig, "config file")
	if code, ok := parse(fs, args, stdout, stderr); !ok {
		return "", code, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "strangler %s: unexpected arguments %q\n", name, fs.Args())
		return "", exitUsage, false
	}
	return *path, 0, true
}

func runCmd(args []string, stdout, stderr io.Writer) int {
	path, code, ok := configCmd("run", "Serves the front door and the admin listener until SIGTERM or SIGINT, then shuts down\nwithin server.shutdown_timeout. Logs are JSON on stderr.", args, stdout, stderr)
	if !ok {
		return code
	}
	return serve(path, stderr)
}

func routesCmd(args []string, stdout, stderr io.Writer) int {
	path, code, ok := configCmd("routes", "Prints the route table the config compiles to.", args, stdout, stderr)
	if !ok {
		return code
	}
	return printRoutes(path, stdout, stderr)
}

func spoolCmd(args []string, stdout, stderr io.Writer) int {
	path, code, ok := configCmd("spool", "Prints the events of the config's spool that Kafka has not acked yet, as JSONL.\nIt only reads the files, so it is safe while the proxy runs.", args, stdout, stderr)
	if !ok {
		return code
	}
	return dumpSpool(path, stdout, stderr)
}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := flags("version", "", "Prints the module version, the VCS revision and the Go version.")
	if code, ok := parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "strangler version: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	fmt.Fprintln(stdout, version())
	return exitOK
}

// checkTimeout bounds check's question to a running instance.
const checkTimeout = 10 * time.Second

func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flags("check", "[-against ADMIN_URL] [-config] FILE",
		"Validates every section of the config, routes included, and prints every problem; it opens no\n"+
			"socket and starts nothing. With -against, it also sends the file to that running instance's\n"+
			"admin listener (POST /config/check), which says what a reload of it would do there: refuse it\n"+
			"(a static section differs from what the instance started with, or the table does not\n"+
			"compile with its handlers) or apply it, with the changes. Exit 1 for any problem or refusal.")
	path := fs.String("config", "", "config file (or give it as the argument)")
	against := fs.String("against", "", "admin URL of a running strangler, e.g. http://127.0.0.1:9901")
	token := fs.String("token", "", "that instance's admin_token, if it has one (default: $STRANGLER_ADMIN_TOKEN)")
	if code, ok := parse(fs, args, stdout, stderr); !ok {
		return code
	}
	switch {
	case *path == "" && fs.NArg() == 1:
		*path = fs.Arg(0)
	case *path == "" && fs.NArg() == 0:
		*path = defaultConfig
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "strangler check: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if *token == "" {
		*token = os.Getenv("STRANGLER_ADMIN_TOKEN")
	}
	data, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintf(stderr, "strangler check: %v\n", err)
		return exitRunError
	}
	code := check(*path, data, stdout, stderr)
	if *against == "" {
		return code
	}
	if c := checkAgainst(*path, data, *against, *token, stdout, stderr); c != exitOK {
		return c
	}
	return code
}

// check validates every section of the config at path (contents data),
// routes included, and prints every problem. It opens no socket and starts
// nothing.
func check(path string, data []byte, stdout, stderr io.Writer) int {
	c, v, err := parseConfig(path, data)
	msgs := problems(err)
	var table *routes.Table
	if v != nil {
		t, err := loadRoutesWithStandIns(v)
		msgs = append(msgs, problems(err)...)
		table = t
		msgs = append(msgs, sideEffectProblems(t, c.Kafka)...)
	}
	if len(msgs) > 0 {
		for _, m := range msgs {
			fmt.Fprintf(stderr, "%s: %s\n", path, m)
		}
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(msgs))
		return exitFinding
	}
	fmt.Fprintf(stdout, "%s: ok: %s; listen %s, admin %s, upstream %s; %s; hotcache %s; session %s\n",
		path, routeSummary(table), c.Proxy.Listen, c.Proxy.AdminListen, c.Legacy.Summary(),
		deliverySummary(c), c.HotCache.Source, c.Session.Summary())
	return exitOK
}

// checkAgainst asks the running instance at admin what a reload of data
// would do there and prints it: exitOK if it would apply it, exitFinding if
// it would refuse it, exitRunError if it could not be asked.
func checkAgainst(path string, data []byte, admin, token string, stdout, stderr io.Writer) int {
	url := strings.TrimSuffix(admin, "/") + "/config/check"
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		fmt.Fprintf(stderr, "strangler check: -against: %v\n", err)
		return exitRunError
	}
	req.Header.Set("Content-Type", "application/yaml")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: checkTimeout}).Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "strangler check: ask the running instance: %v\n", err)
		return exitRunError
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var rc routes.ReloadCheck
	if err == nil && resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(body, &rc)
	} else if err == nil {
		err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(body))
	}
	if err != nil || rc.Result == "" {
		fmt.Fprintf(stderr, "strangler check: %s answered: %v\n", url, orUnexpected(err, body))
		return exitRunError
	}
	if rc.Result != routes.ResultOK {
		fmt.Fprintf(stderr, "%s: the instance at %s would refuse it (%s):\n", path, admin, rc.Result)
		for _, p := range rc.Problems {
			fmt.Fprintf(stderr, "%s:   %s\n", path, p)
		}
		return exitFinding
	}
	if len(rc.Changes) == 0 {
		fmt.Fprintf(stdout, "%s: the instance at %s would apply it: no change to its routes\n", path, admin)
		return exitOK
	}
	fmt.Fprintf(stdout, "%s: the instance at %s would apply it, changing:\n", path, admin)
	for _, c := range rc.Changes {
		fmt.Fprintf(stdout, "%s:   %s\n", path, c)
	}
	return exitOK
}

func orUnexpected(err error, body []byte) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("not a reload check: %.200s", body)
}

// deliverySummary says where accepted events go: "delivery spool → kafka
// k1:9092,k2:9092 topic events.v1" or "delivery spool (no kafka.brokers:
// events stay in var/spool)".
func deliverySummary(c fileConfig) string {
	if !c.Kafka.Enabled() {
		return fmt.Sprintf("delivery %s (no kafka.brokers: events stay in %s)", c.Events.Delivery, c.Spool.Dir)
	}
	return fmt.Sprintf("delivery %s → kafka %s topic %s", c.Events.Delivery, strings.Join(c.Kafka.Brokers, ","), c.Kafka.Topic)
}

// loadRoutesWithStandIns compiles the route table from v with handlers
// built on inert dependencies: enough to check names, serving nothing.
func loadRoutesWithStandIns(v *viper.Viper) (*routes.Table, error) {
	reg, err := registry(handlerDeps{})
	if err != nil {
		return nil, err
	}
	return loadRoutes(v, reg)
}

// dumpSpool prints the events of the spool named by the config at path that
// Kafka has not acked yet, as JSONL. It only reads the files, so it works
// while the proxy runs.
func dumpSpool(path string, stdout, stderr io.Writer) int {
	c, _, err := loadConfig(path)
	if err != nil {
		for _, m := range problems(err) {
			fmt.Fprintf(stderr, "%s: %s\n", path, m)
		}
		return exitRunError
	}
	if _, err := os.Stat(c.Spool.Dir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "strangler spool: no spool at %s yet: nothing waiting\n", c.Spool.Dir)
		return exitOK
	}
	if err := spool.Dump(c.Spool.Dir, stdout); err != nil {
		fmt.Fprintf(stderr, "strangler spool: %v\n", err)
		return exitRunError
	}
	return exitOK
}

// routeSummary counts routes by mode: "3 routes (2 legacy, 1 ported)".
func routeSummary(t *routes.Table) string {
	counts := map[routes.Mode]int{}
	rs := t.Routes()
	for _, r := range rs {
		counts[r.Mode]++
	}
	var parts []string
	for _, m := range []routes.Mode{routes.ModeLegacy, routes.ModeShadow, routes.ModeCanary, routes.ModePorted} {
		if counts[m] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[m], m))
		}
	}
	s := fmt.Sprintf("%d routes", len(rs))
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	if t.AllLegacy() {
		s += ", all_legacy on"
	}
	return s
}

// printRoutes prints the table the config at path compiles to.
func printRoutes(path string, stdout, stderr io.Writer) int {
	_, v, err := loadConfig(path)
	if v == nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return exitRunError
	}
	t, err := loadRoutesWithStandIns(v)
	if err != nil {
		for _, m := range problems(err) {
			fmt.Fprintf(stderr, "%s: %s\n", path, m)
		}
		return exitRunError
	}
	if err := t.Fprint(stdout); err != nil {
		fmt.Fprintf(stderr, "print routes: %v\n", err)
		return exitRunError
	}
	return exitOK
}

// version names the build: module version, VCS revision when stamped, Go.
func version() string {
	v, rev := "(devel)", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = " " + s.Value
			}
		}
	}
	return fmt.Sprintf("strangler %s%s %s", v, rev, runtime.Version())
}
