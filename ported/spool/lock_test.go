package spool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

const lockChildEnv = "SPOOL_TEST_LOCK_CHILD_DIR"

// lockChild opens the spool in dir, says so, and holds it until its stdin
// closes.
func lockChild(dir string) {
	s, err := Open(Config{Dir: dir}, zap.NewNop(), nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(2)
	}
	fmt.Println("open")
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = s.Close(context.Background())
	os.Exit(0)
}

// A second process cannot open a spool directory another one holds: it is
// told which directory and which pid. Once the holder exits (here: killed,
// so nothing unlocks but the kernel) the directory opens again.
func TestSecondProcessCannotOpenTheSpool(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), lockChildEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "open" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child: %q %v", line, err)
	}

	s, err := Open(Config{Dir: dir}, zap.NewNop(), nil)
	if err == nil {
		_ = s.Close(context.Background())
		t.Fatal("a second process opened a spool directory the first one holds")
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "pid "+pid) {
		t.Errorf("Open of a held spool = %v, want ErrLocked naming %s and pid %s", err, dir, pid)
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	s, err = Open(Config{Dir: dir}, zap.NewNop(), nil)
	if err != nil {
		t.Fatalf("Open after the holder died: %v", err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// In one process too: a second Open of the same directory is refused
// while the first is open, and allowed after its Close.
func TestOpenTwiceInOneProcess(t *testing.T) {
	dir := t.TempDir()
	s := open(t, testConfig(dir))
	if _, err := Open(testConfig(dir), zap.NewNop(), nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	closeSpool(t, s, time.Second)
	closeSpool(t, open(t, testConfig(dir)), time.Second)
}
