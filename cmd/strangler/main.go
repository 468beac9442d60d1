// Command strangler runs the Strangler reverse proxy in front of a legacy
// monolith, routing each route to the monolith or to its Go port as
// config.yaml says.
//
//	strangler [run] [-config config.yaml]   serve until SIGTERM/SIGINT
//	strangler check [config.yaml]           validate a config, start nothing
//	strangler routes [-config config.yaml]  print the compiled route table
//	strangler spool [-config config.yaml]   print the spooled events as JSONL
//	strangler compare -capture F -route R   replay a capture, compare, report
//	strangler version
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/viper"

	"github.com/strangler-proxy/strangler/ported/spool"
	"github.com/strangler-proxy/strangler/routes"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a bad config, a failed start, an unclean stop
	exitUsage   = 2
)

const defaultConfig = "config.yaml"

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		path, ok := configFlag("run", args, stderr)
		if !ok {
			return exitUsage
		}
		return serve(path, stderr)
	case "check":
		path, ok := configArg(args, stderr)
		if !ok {
			return exitUsage
		}
		return check(path, stdout, stderr)
	case "routes":
		path, ok := configFlag("routes", args, stderr)
		if !ok {
			return exitUsage
		}
		return printRoutes(path, stdout, stderr)
	case "spool":
		path, ok := configFlag("spool", args, stderr)
		if !ok {
			return exitUsage
		}
		return dumpSpool(path, stdout, stderr)
	case "compare":
		return compareCmd(args, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, version())
		return exitOK
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "strangler: unknown command %q\n", cmd)
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  strangler [run] [-config config.yaml]   serve until SIGTERM or SIGINT
  strangler check [config.yaml]           validate a config without starting anything
  strangler routes [-config config.yaml]  print the compiled route table
  strangler spool [-config config.yaml]   print the events waiting in the spool (JSONL; safe while running)
  strangler compare -capture FILE -route NAME [-config config.yaml] [-legacy URL] [-out report.html]
                                          replay a capture against legacy and Go, write the report,
                                          exit 1 unless the route is ready to flip
  strangler version
`)
}

// configFlag parses `-config path` for run and routes.
func configFlag(name string, args []string, stderr io.Writer) (string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", defaultConfig, "config file")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "strangler %s: unexpected arguments %q\n", name, fs.Args())
		return "", false
	}
	return *path, true
}

// configArg reads check's path: positional, or -config like the others.
func configArg(args []string, stderr io.Writer) (string, bool) {
	if len(args) == 1 && !strings.HasPrefix(args[0], "-") {
		return args[0], true
	}
	return configFlag("check", args, stderr)
}

// check validates every section of the config at path, routes included,
// and prints every problem. It opens no socket and starts nothing.
func check(path string, stdout, stderr io.Writer) int {
	c, v, err := loadConfig(path)
	msgs := problems(err)
	var table *routes.Table
	if v != nil {
		t, err := loadRoutesWithStandIns(v)
		msgs = append(msgs, problems(err)...)
		table = t
	}
	if len(msgs) > 0 {
		for _, m := range msgs {
			fmt.Fprintf(stderr, "%s: %s\n", path, m)
		}
		fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(msgs))
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s: ok: %s; listen %s, admin %s, upstream %s; %s; hotcache %s; session %s\n",
		path, routeSummary(table), c.Proxy.Listen, c.Proxy.AdminListen, c.Legacy.Summary(),
		deliverySummary(c), c.HotCache.Source, c.Session.Summary())
	return exitOK
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
		return exitFailure
	}
	if _, err := os.Stat(c.Spool.Dir); errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(stderr, "strangler spool: no spool at %s yet: nothing waiting\n", c.Spool.Dir)
		return exitOK
	}
	if err := spool.Dump(c.Spool.Dir, stdout); err != nil {
		fmt.Fprintf(stderr, "strangler spool: %v\n", err)
		return exitFailure
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
		return exitFailure
	}
	t, err := loadRoutesWithStandIns(v)
	if err != nil {
		for _, m := range problems(err) {
			fmt.Fprintf(stderr, "%s: %s\n", path, m)
		}
		return exitFailure
	}
	if err := t.Fprint(stdout); err != nil {
		fmt.Fprintf(stderr, "print routes: %v\n", err)
		return exitFailure
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
