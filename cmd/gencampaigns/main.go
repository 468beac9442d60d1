// Command gencampaigns writes the deterministic sample campaign data set
// (examples/monolith/data/campaigns.json by default). Same seed, same bytes.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/strangler-proxy/strangler/ported/campaign/campaigngen"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gencampaigns:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("gencampaigns", flag.ContinueOnError)
	out := fs.String("out", "examples/monolith/data/campaigns.json", "file to write (- for stdout)")
	n := fs.Int("n", campaigngen.Count, "number of campaigns")
	seed1 := fs.Uint64("seed1", campaigngen.Seed1, "first PCG seed word")
	seed2 := fs.Uint64("seed2", campaigngen.Seed2, "second PCG seed word")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > 999999 {
		return fmt.Errorf("-n %d: want 1..999999 (ids have 6 digits)", *n)
	}
	f := campaigngen.Generate(*n, *seed1, *seed2)
	if *out == "-" {
		return campaigngen.Encode(os.Stdout, f)
	}
	// Write beside the target and rename, so a reader never sees half a file.
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".campaigns-*.json")
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := campaigngen.Encode(tmp, f); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}
