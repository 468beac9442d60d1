package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/strangler-proxy/strangler/ported/campaign/campaigngen"
)

// The shipped file must be exactly what the generator produces, so that
// nobody hand-edits it and both implementations read the same data.
func TestShippedFileIsReproducible(t *testing.T) {
	shipped, err := os.ReadFile(filepath.Join("..", "..", "examples", "monolith", "data", "campaigns.json"))
	if err != nil {
		t.Fatalf("read shipped file: %v", err)
	}
	var buf bytes.Buffer
	if err := campaigngen.Encode(&buf, campaigngen.Generate(campaigngen.Count, campaigngen.Seed1, campaigngen.Seed2)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), shipped) {
		t.Fatalf("examples/monolith/data/campaigns.json differs from the generator output (%d vs %d bytes); run `go run ./cmd/gencampaigns`", len(shipped), buf.Len())
	}
}

func TestRunWritesFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "c.json")
	if err := run([]string{"-out", out, "-n", "3"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := campaigngen.Encode(&want, campaigngen.Generate(3, campaigngen.Seed1, campaigngen.Seed2)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("got\n%s\nwant\n%s", got, want.Bytes())
	}
	if err := run([]string{"-out", out, "-n", "0"}); err == nil {
		t.Fatal("-n 0 accepted")
	}
}
