package routes

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// words is a file's text with its comment markers dropped and its white
// space folded, so a phrase is found however the lines wrap.
func words(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(strings.TrimSpace(l), "#")
	}
	return strings.Join(strings.Fields(strings.Join(lines, " ")), " ")
}

// short spells a duration as the docs do: 5m, not 5m0s.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return strings.TrimSuffix(s, "h0m")
}

func mib(n int) string { return fmt.Sprintf("%d MiB", n>>20) }

// The per-route defaults README.md and config.yaml's comments state are
// the ones Compile applies.
func TestDocsStateTheRouteDefaults(t *testing.T) {
	docs := map[string][]struct {
		phrase string // with %v where the default goes
		value  any
	}{
		"README.md": {
			{"`sample_percent` (default %v;", DefaultShadowSamplePercent},
			{"`timeout` (default %v:", short(DefaultShadowTimeout)},
			{"`max_body_bytes` (%v:", mib(DefaultShadowMaxBodyBytes)},
			{"`wait` %v for a message", short(DefaultLegacyTopicWait)},
			{"`key_path` (default `%v`)", DefaultKeyPath},
			{"`ip`; default %v;", DefaultSticky},
			{"`target_mismatch_rate` (%v:", DefaultVerdictTargetMismatchRate},
			{"`max_error_rate_gap` (%v)", DefaultVerdictMaxErrorRateGap},
			{"`max_p99_ratio` (%v)", DefaultVerdictMaxP99Ratio},
			{"1m to 60m, default %v)", short(DefaultBudgetWindow)},
			{"`min_samples` (%v)", DefaultBudgetMinSamples},
			{"`max_bytes` (default %v,", mib(DefaultCaptureMaxBytes)},
		},
		"config.yaml": {
			{"at most 100 (default %v)", DefaultShadowSamplePercent},
			{"(stuck_candidates) (default %v)", short(DefaultShadowTimeout)},
			{"skipped, not compared (default %v)", DefaultShadowMaxBodyBytes},
			{"wait for a message, default %v)", short(DefaultLegacyTopicWait)},
			{"message to its request (default %v)", DefaultKeyPath},
			{"header:NAME (default %v)", DefaultSticky},
			{"1m to 60m (default %v)", short(DefaultBudgetWindow)},
			{"before a rate is judged (default %v)", DefaultBudgetMinSamples},
			{"the rule of three (default %v:", DefaultVerdictTargetMismatchRate},
			{"as a fraction of calls (default %v)", DefaultVerdictMaxErrorRateGap},
			{"Go's p99 over legacy's (default %v)", DefaultVerdictMaxP99Ratio},
			{"this big (default %v =", DefaultCaptureMaxBytes},
		},
	}
	for name, claims := range docs {
		text := words(t, name)
		for _, c := range claims {
			if p := fmt.Sprintf(c.phrase, c.value); !strings.Contains(text, p) {
				t.Errorf("%s does not say %q (the phrase, with the code's default)", name, p)
			}
		}
	}
}
