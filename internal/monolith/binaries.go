package monolith

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// installHint is the one fix for every missing binary.
const installHint = "install with `sudo apt-get install -y nginx-light php8.2-fpm php8.2-cli` (or `make deps`)"

type binaries struct{ nginx, fpm string }

// findBinaries looks in PATH first, then in /usr/sbin, which a non-root
// user's PATH often lacks on Debian.
func findBinaries() (binaries, error) {
	return findIn(
		[]string{"nginx", "/usr/sbin/nginx"},
		[]string{"php-fpm8.2", "/usr/sbin/php-fpm8.2", "php-fpm", "/usr/sbin/php-fpm"},
	)
}

// findIn returns the first existing candidate of each list.
func findIn(nginx, fpm []string) (binaries, error) {
	var b binaries
	var missing []string
	for _, s := range []struct {
		dst   *string
		name  string
		cands []string
	}{
		{&b.nginx, "nginx", nginx},
		{&b.fpm, "php-fpm", fpm},
	} {
		if *s.dst = lookPath(s.cands); *s.dst == "" {
			missing = append(missing, fmt.Sprintf("%s (looked for %s)", s.name, strings.Join(s.cands, ", ")))
		}
	}
	if len(missing) > 0 {
		return b, fmt.Errorf("%w: %s not found; %s", ErrNotInstalled, strings.Join(missing, " and "), installHint)
	}
	return b, nil
}

func lookPath(cands []string) string {
	for _, c := range cands {
		if strings.Contains(c, "/") {
			if st, err := os.Stat(c); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
				return c
			}
			continue
		}
		if p, err := exec.LookPath(c); err == nil {
			return p
		}
	}
	return ""
}
