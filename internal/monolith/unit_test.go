package monolith

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFindInMissing(t *testing.T) {
	tests := []struct {
		name       string
		nginx, fpm []string
		wantMiss   []string
	}{
		{name: "both missing", nginx: []string{"/nonexistent/nginx"}, fpm: []string{"no-such-php-fpm-binary"}, wantMiss: []string{"nginx", "php-fpm"}},
		{name: "fpm missing", nginx: []string{"/bin/sh"}, fpm: []string{"/nonexistent/php-fpm8.2"}, wantMiss: []string{"php-fpm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := findIn(tt.nginx, tt.fpm)
			if !errors.Is(err, ErrNotInstalled) {
				t.Fatalf("err = %v, want ErrNotInstalled", err)
			}
			for _, want := range append(tt.wantMiss, "sudo apt-get install -y nginx-light php8.2-fpm php8.2-cli", "make deps") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestFindInFallsBack(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "fake-fpm")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExec := filepath.Join(dir, "not-exec")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := findIn([]string{"/nonexistent/nginx", "sh"}, []string{notExec, dir, exe})
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(b.nginx) != "sh" || b.fpm != exe {
		t.Errorf("found %+v, want sh from PATH and %s", b, exe)
	}
}

func TestValidateEnv(t *testing.T) {
	tests := []struct {
		give    map[string]string
		wantErr bool
	}{
		{give: nil},
		{give: map[string]string{"STRANGLER_FIXED_NOW": "2030-01-02T03:04:05Z", "_x1": "/a b/c.json"}},
		{give: map[string]string{"1BAD": "v"}, wantErr: true},
		{give: map[string]string{"BAD-NAME": "v"}, wantErr: true},
		{give: map[string]string{"": "v"}, wantErr: true},
		{give: map[string]string{"Q": `a"b`}, wantErr: true},
		{give: map[string]string{"N": "a\nb"}, wantErr: true},
		{give: map[string]string{"E": "${HOME}"}, wantErr: true},
	}
	for _, tt := range tests {
		err := validateEnv(tt.give)
		if (err != nil) != tt.wantErr {
			t.Errorf("validateEnv(%q) = %v, want error %v", tt.give, err, tt.wantErr)
		}
	}
}

func TestDialHost(t *testing.T) {
	tests := []struct{ give, want string }{
		{"127.0.0.1", "127.0.0.1"},
		{"0.0.0.0", "127.0.0.1"},
		{"::", "::1"},
		{"localhost", "localhost"},
		{"192.0.2.1", "192.0.2.1"},
	}
	for _, tt := range tests {
		if got := dialHost(tt.give); got != tt.want {
			t.Errorf("dialHost(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

// TestConfRender renders the shipped templates and checks the settings the
// rest of the project relies on.
func TestConfRender(t *testing.T) {
	root, err := findRoot()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		give    conf
		want    map[string][]string // file → substrings
		wantNot map[string][]string
		wantErr bool
	}{
		{
			name: "root with proxy_pass",
			give: conf{Listen: "127.0.0.1:1234", ProxyListen: "127.0.0.1:1235", Upstream: "127.0.0.1:1234", AsRoot: true, NginxWorkers: "1", Workers: 3,
				Env: map[string]string{"B_VAR": "2", "A_VAR": "1"}, RedisLocking: true},
			want: map[string][]string{
				"nginx.conf": {"user root;", "daemon off;", "listen 127.0.0.1:1234;", "listen 127.0.0.1:1235;", "server 127.0.0.1:1234;", "keepalive_timeout 75s;", "client_max_body_size 2g;", `proxy_set_header Connection "";`, "proxy_http_version 1.1;"},
				"php-fpm.conf": {"user = root", "pm = static", "pm.max_children = 3", "clear_env = yes", "env[A_VAR] = \"1\"\nenv[B_VAR] = \"2\"", "upload_max_filesize] = 2G", "post_max_size] = 2G",
					"php_admin_flag[redis.session.locking_enabled] = on"},
			},
		},
		{
			name: "non-root without proxy_pass",
			give: conf{Listen: "0.0.0.0:80", NginxWorkers: "auto", Workers: 1},
			wantNot: map[string][]string{
				"nginx.conf":   {"user root", "proxy_pass http:", "upstream monolith"},
				"php-fpm.conf": {"user = root", "env[", "locking_enabled"},
			},
		},
		{name: "space in dir", give: conf{Listen: "127.0.0.1:1", Workers: 1}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.give.Dir = t.TempDir()
			if tt.wantErr {
				tt.give.Dir = filepath.Join(tt.give.Dir, "a b")
			}
			tt.give.Public = filepath.Join(root, "examples", "monolith", "public")
			tt.give.Socket = filepath.Join(tt.give.Dir, "php-fpm.sock")
			err := tt.give.write(filepath.Join(root, "examples", "monolith", "conf"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("write: %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			for _, d := range []string{"tmp/client_body", "tmp/php-upload", "sessions"} {
				if st, err := os.Stat(filepath.Join(tt.give.Dir, d)); err != nil || !st.IsDir() {
					t.Errorf("dir %s not created: %v", d, err)
				}
			}
			read := func(name string) string {
				b, err := os.ReadFile(filepath.Join(tt.give.Dir, name))
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			for file, subs := range tt.want {
				got := read(file)
				for _, s := range subs {
					if !strings.Contains(got, s) {
						t.Errorf("%s lacks %q:\n%s", file, s, got)
					}
				}
			}
			for file, subs := range tt.wantNot {
				got := read(file)
				for _, s := range subs {
					if strings.Contains(got, s) {
						t.Errorf("%s has %q", file, s)
					}
				}
			}
			// Every path Nginx writes to must be under the runtime dir.
			for _, line := range strings.Split(read("nginx.conf"), "\n") {
				f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ";"))
				if len(f) >= 2 && (strings.HasSuffix(f[0], "_temp_path") || f[0] == "pid" || f[0] == "error_log") && !strings.HasPrefix(f[1], tt.give.Dir) {
					t.Errorf("%s outside the runtime dir: %s", f[0], f[1])
				}
			}
		})
	}
}

func TestNginxWorkers(t *testing.T) {
	for give, want := range map[int]string{0: "auto", -1: "auto", 1: "1", 3: "3"} {
		if got := nginxWorkers(give); got != want {
			t.Errorf("nginxWorkers(%d) = %q, want %q", give, got, want)
		}
	}
}
