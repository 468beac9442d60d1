package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var (
	helpFlag    = regexp.MustCompile(`(?m)^  -([a-z][a-z-]*)[^\n]*\n\s+(.*)$`)
	helpDefault = regexp.MustCompile(`\(default "?([^"):]*)"?\)$`)
	// A command line in the README: `strangler compare -config F ...`.
	readmeCommand = regexp.MustCompile("strangler (run|check|routes|spool|compare|version)([^`\n]*)")
	readmeFlag    = regexp.MustCompile(`(?:^| )-([a-z][a-z-]*)`)
	compareRow    = regexp.MustCompile("(?m)^\\| `-([a-z][a-z-]*)[^`]*` \\| (.*) \\|$")
	statedDefault = regexp.MustCompile("\\(default `?([^`):;]*)`?\\)")
	commandList   = regexp.MustCompile("`strangler ((?:[a-z]+ \\| )+[a-z]+)`")
)

// commandFlags are the flags `strangler NAME -h` lists, with their defaults.
func commandFlags(t *testing.T, name string) map[string]string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{name, "-h"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("%s -h: exit %d: %s", name, code, &stderr)
	}
	out := map[string]string{}
	for _, m := range helpFlag.FindAllStringSubmatch(stdout.String(), -1) {
		def := ""
		if d := helpDefault.FindStringSubmatch(m[2]); d != nil {
			def = d[1]
		}
		out[m[1]] = def
	}
	return out
}

// Every flag a command line in the README passes is one of that command's,
// and the table of compare's flags lists exactly its flags, with the
// defaults they have.
func TestReadmeNamesTheCommandsFlags(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	flags := map[string]map[string]string{}
	var names []string
	for _, c := range commands() {
		flags[c.name] = commandFlags(t, c.name)
		names = append(names, c.name)
	}
	if m := commandList.FindStringSubmatch(readme); m == nil || m[1] != strings.Join(names, " | ") {
		t.Errorf("the README lists the commands as %q; they are %q", m, strings.Join(names, " | "))
	}
	if len(flags["compare"]) < 5 {
		t.Fatalf("read only %d flags from compare -h: the reader is broken", len(flags["compare"]))
	}
	lines := 0
	for _, m := range readmeCommand.FindAllStringSubmatch(readme, -1) {
		lines++
		for _, f := range readmeFlag.FindAllStringSubmatch(m[2], -1) {
			if _, ok := flags[m[1]][f[1]]; !ok {
				t.Errorf("the README runs `strangler %s%s`, but %s has no flag -%s", m[1], m[2], m[1], f[1])
			}
		}
	}
	if lines < 5 {
		t.Fatalf("found only %d strangler command lines in the README", lines)
	}

	var table []string
	for _, m := range compareRow.FindAllStringSubmatch(readme, -1) {
		table = append(table, m[1])
		def, ok := flags["compare"][m[1]]
		if !ok {
			continue // reported below
		}
		if d := statedDefault.FindStringSubmatch(m[2]); d != nil && d[1] != def {
			t.Errorf("the README says compare's -%s defaults to %q; it is %q", m[1], d[1], def)
		}
	}
	var code []string
	for f := range flags["compare"] {
		code = append(code, f)
	}
	slices.Sort(table)
	slices.Sort(code)
	if !slices.Equal(table, code) {
		t.Errorf("the README's table of compare's flags lists %v; compare has %v", table, code)
	}
}
