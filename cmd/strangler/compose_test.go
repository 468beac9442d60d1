package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
)

// There is no Docker engine on the build machines, so the compose stack is
// checked the way `docker compose config` would: compose-go loads, normalises
// and validates it, and the pieces it refers to must exist.
func TestComposeFileLoadsAndIsConsistent(t *testing.T) {
	root := filepath.Join("..", "..")
	opts, err := cli.NewProjectOptions(
		[]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root),
		cli.WithName("strangler"),
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}

	for _, name := range []string{"kafka", "minio", "minio-seed", "monolith", "strangler"} {
		if _, ok := p.Services[name]; !ok {
			t.Errorf("service %q missing", name)
		}
	}
	px := p.Services["strangler"]
	for _, dep := range []string{"monolith", "kafka", "minio-seed"} {
		if _, ok := px.DependsOn[dep]; !ok {
			t.Errorf("strangler does not depend on %s", dep)
		}
	}

	// Every build target the stack names is a stage of the Dockerfile.
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?mi)^FROM\s+\S+\s+AS\s+(\S+)`).FindAllStringSubmatch(string(df), -1) {
		stages[m[1]] = true
	}
	for name, s := range p.Services {
		if s.Build != nil && !stages[s.Build.Target] {
			t.Errorf("service %s builds target %q, which the Dockerfile lacks (stages: %v)", name, s.Build.Target, stages)
		}
	}

	// The config the proxy container mounts must pass `strangler check`.
	var cfgPath string
	for _, v := range px.Volumes {
		if v.Target == "/app/config.yaml" {
			cfgPath = v.Source
		}
	}
	if cfgPath == "" {
		t.Fatal("strangler service mounts no /app/config.yaml")
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"check", cfgPath}, &out, &errOut); code != 0 {
		t.Fatalf("strangler check %s: exit %d\n%s%s", cfgPath, code, out.String(), errOut.String())
	}
}
