package monolith

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// validateSessions checks Options' session fields and fills their defaults.
func validateSessions(o *Options) error {
	switch o.Sessions {
	case "":
		o.Sessions = SessionsFiles
	case SessionsFiles, SessionsRedis, SessionsMemcached:
	default:
		return fmt.Errorf("monolith: sessions %q: want files, redis or memcached", o.Sessions)
	}
	if o.Sessions == SessionsFiles && o.SessionAddr != "" {
		return fmt.Errorf("monolith: session address %q given for files sessions", o.SessionAddr)
	}
	if o.SessionLocking && o.Sessions != SessionsRedis {
		return fmt.Errorf("monolith: session locking is phpredis's setting, not for %s sessions", o.Sessions)
	}
	if o.SessionDir != "" {
		if o.Sessions != SessionsFiles {
			return fmt.Errorf("monolith: a session directory is for files sessions, not %s", o.Sessions)
		}
		abs, err := filepath.Abs(o.SessionDir)
		if err != nil {
			return fmt.Errorf("monolith: session dir: %w", err)
		}
		if err := checkConfPath(abs); err != nil {
			return err
		}
		o.SessionDir = abs
	}
	if o.SessionAddr != "" {
		if _, _, err := net.SplitHostPort(o.SessionAddr); err != nil {
			return fmt.Errorf("monolith: session address %q: %w", o.SessionAddr, err)
		}
		if strings.ContainsAny(o.SessionAddr, "\"?&;") {
			return fmt.Errorf("monolith: session address %q: want host:port", o.SessionAddr)
		}
	}
	switch o.SerializeHandler {
	case "":
		o.SerializeHandler = "php"
	case "php", "php_serialize", "php_binary":
	default:
		return fmt.Errorf("monolith: serialize handler %q: want php_serialize, php or php_binary", o.SerializeHandler)
	}
	return nil
}

// sessionStore points the pool's sessions at their store, starting a
// Redis or memcached of its own when o names none.
func (m *Monolith) sessionStore(ctx context.Context, o Options, bins binaries, c *conf) error {
	m.Sessions = o.Sessions
	c.SessionHandler, c.SerializeHandler, c.RedisLocking = o.Sessions, o.SerializeHandler, o.SessionLocking
	if o.Sessions == SessionsFiles {
		m.SessionSavePath = filepath.Join(m.Dir, "sessions")
		if o.SessionDir != "" {
			if err := os.MkdirAll(o.SessionDir, 0o700); err != nil {
				return fmt.Errorf("monolith: %w", err)
			}
			m.SessionSavePath = o.SessionDir
		}
		c.SessionSavePath = m.SessionSavePath
		return nil
	}
	if err := checkExtension(bins.fpm, o.Sessions); err != nil {
		return err
	}
	m.SessionAddr = o.SessionAddr
	if m.SessionAddr == "" {
		var err error
		dir := filepath.Join(m.Dir, o.Sessions)
		if o.Sessions == SessionsRedis {
			m.SessionServer, err = StartRedis(ctx, dir)
		} else {
			m.SessionServer, err = StartMemcached(ctx, dir)
		}
		if err != nil {
			return err
		}
		m.SessionAddr = m.SessionServer.Addr
	}
	if o.Sessions == SessionsRedis {
		// phpredis's save_path; the timeouts keep a Redis outage from
		// hanging each PHP worker for phpredis's default of a day.
		m.SessionSavePath = "tcp://" + m.SessionAddr + "?timeout=2&read_timeout=2"
	} else {
		m.SessionSavePath = m.SessionAddr
	}
	c.SessionSavePath = m.SessionSavePath
	return nil
}

// checkExtension fails when PHP-FPM lacks the extension a save handler
// needs: without it every session_start would fail at request time.
func checkExtension(fpm, ext string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, fpm, "-m").Output()
	if err != nil {
		return fmt.Errorf("monolith: %s -m: %w", fpm, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == ext {
			return nil
		}
	}
	return fmt.Errorf("%w: PHP-FPM has no %s extension for %s sessions; %s", ErrNotInstalled, ext, ext, kvInstallHint)
}
