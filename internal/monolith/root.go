package monolith

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// findRoot walks up from the working directory to the nearest go.mod, so
// tests in any package (whose working directory is their own) and binaries
// started from the repo or a container's /app find examples/monolith.
func findRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("monolith: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("monolith: find repo root: %w", err)
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("monolith: no go.mod above %s; set Options.Root to the repo root", wd)
		}
	}
}
