package monolith

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// conf is what examples/monolith/conf/*.tmpl are rendered with.
type conf struct {
	Dir          string // runtime dir: pid files, logs, temp dirs, socket
	Public       string // document root (examples/monolith/public)
	Socket       string // PHP-FPM's unix socket
	Listen       string // host:port of the main server
	ProxyListen  string // host:port of the proxy_pass server; "" = none
	Upstream     string // host:port the proxy_pass server dials
	WebSocket    string // host:port Nginx proxies /ws/ to; "" = none
	AsRoot       bool   // run workers as root (Nginx user root; FPM -R)
	NginxWorkers string
	Workers      int               // PHP-FPM children
	Env          map[string]string // pool env (rendered in key order)
	// PHP's session settings for the pool.
	SessionHandler   string // session.save_handler: files, redis, memcached
	SessionSavePath  string // session.save_path, quoted in the INI
	SerializeHandler string // session.serialize_handler
	RedisLocking     bool   // redis.session.locking_enabled
}

// write renders nginx.conf and php-fpm.conf from the templates in tmplDir
// into c.Dir and creates the temp dirs they name.
func (c conf) write(tmplDir string) error {
	for _, p := range []string{c.Dir, c.Public} {
		if err := checkConfPath(p); err != nil {
			return err
		}
	}
	// Nginx and PHP notice a missing temp dir only when a request needs it,
	// which is too late to report well.
	for _, d := range []string{
		"tmp/client_body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi",
		"tmp/php-upload", "tmp/php", "sessions",
	} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o700); err != nil {
			return fmt.Errorf("monolith: %w", err)
		}
	}
	for _, name := range []string{"nginx.conf", "php-fpm.conf"} {
		t, err := template.New(name + ".tmpl").Option("missingkey=error").ParseFiles(filepath.Join(tmplDir, name+".tmpl"))
		if err != nil {
			return fmt.Errorf("monolith: template %s: %w", name, err)
		}
		var b strings.Builder
		if err := t.Execute(&b, c); err != nil {
			return fmt.Errorf("monolith: render %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(c.Dir, name), []byte(b.String()), 0o600); err != nil {
			return fmt.Errorf("monolith: %w", err)
		}
	}
	return nil
}

// checkConfPath refuses paths that Nginx's config syntax would split or
// interpret (whitespace, quotes, ';', braces, '$'), rather than quoting them.
func checkConfPath(p string) error {
	if i := strings.IndexAny(p, " \t\r\n\"';{}$#\\"); i >= 0 {
		return fmt.Errorf("monolith: path %q has %q, which the Nginx config cannot hold unquoted", p, p[i])
	}
	return nil
}

// validateEnv keeps Options.Env within what an INI double-quoted value in
// php-fpm.conf holds literally.
func validateEnv(env map[string]string) error {
	for k, v := range env {
		if !isEnvName(k) {
			return fmt.Errorf("monolith: env name %q: want [A-Za-z_][A-Za-z0-9_]*", k)
		}
		if strings.ContainsAny(v, "\"\x00\r\n") || strings.Contains(v, "${") {
			return fmt.Errorf("monolith: env %s: value may not contain '\"', \"${\", NUL or newlines", k)
		}
	}
	return nil
}

func isEnvName(s string) bool {
	for i, r := range s {
		letter := r == '_' || (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z')
		if !letter && (i == 0 || r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}
