package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Two processes on one spool directory: the second refuses to start,
// naming the directory and the first one's pid, and the first keeps every
// event it accepted.
func TestSecondProcessRefusesAHeldSpool(t *testing.T) {
	m := startMonolith(t)
	spoolDir := t.TempDir()
	first := start(t, config{Upstream: m.URL, SpoolDir: spoolDir, Routes: eventsRoute("ported")})
	c := client()
	want := map[string]string{}
	post := func(n int) {
		t.Helper()
		for i := range n {
			user := fmt.Sprintf("u_first%05d", len(want)+i)
			code, id, err := postEvent(c, first.URL, event(user, nil))
			if err != nil || code != http.StatusAccepted {
				t.Fatalf("event to the first proxy: %d %v", code, err)
			}
			want[id] = user
		}
	}
	post(20)

	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	second := config{Listen: freeAddr(t), Admin: freeAddr(t), Upstream: m.URL, SpoolDir: spoolDir, Routes: eventsRoute("ported")}
	if err := os.WriteFile(cfgPath, []byte(second.render()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "run", "-config", cfgPath)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("second process on a held spool: %v, want a non-zero exit\n%s", err, out)
	}
	pid := strconv.Itoa(first.cmd.Process.Pid)
	if !strings.Contains(string(out), spoolDir+" is locked by pid "+pid) {
		t.Errorf("second process's log does not name the directory %s and the holder's pid %s:\n%s", spoolDir, pid, out)
	}

	post(20)
	stopGracefully(t, first)
	got := strangleSpool(t, first.Config)
	if len(got) != len(want) {
		t.Errorf("the spool lists %d events, want the %d the first proxy accepted", len(got), len(want))
	}
	for id, user := range want {
		if got[id] != user {
			t.Errorf("event %s: spooled key %q, want %q", id, got[id], user)
		}
	}
}
