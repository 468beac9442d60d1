package monolith

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one master process (Nginx or PHP-FPM) leading its own process
// group, which its workers inherit.
type proc struct {
	name   string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the master has exited; it stays unreaped until stop
}

func startProc(name, bin string, args []string, outPath string) (*proc, error) {
	out, err := os.OpenFile(outPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("monolith: %w", err)
	}
	// The child holds its own copy of the descriptor; ours is not needed.
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own group: Stop signals the workers too, and a Ctrl-C in the
		// terminal reaches only the launcher, which then stops in order.
		Setpgid: true,
		// If the launcher dies without Stop, the master shuts down cleanly
		// (SIGTERM lets it stop its workers; SIGKILL would orphan them).
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("monolith: start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, exited: make(chan struct{})}
	go p.waitExit()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// waitExit blocks until the master exits without reaping it (WNOWAIT): an
// unreaped leader keeps its process group id reserved, so stop can SIGKILL
// the group afterwards without any chance of hitting a recycled id.
func (p *proc) waitExit() {
	defer close(p.exited)
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, p.pid(), &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// stop sends SIGTERM to the group (fast shutdown for both Nginx and
// PHP-FPM), SIGKILLs whatever is left after grace, then reaps the master.
func (p *proc) stop(grace time.Duration) error {
	pgid := p.pid()
	_ = syscall.Kill(-pgid, syscall.SIGTERM) // ESRCH: already gone
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
	}
	// Workers a master failed to take down, or everything after the grace.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-p.exited
	err := p.cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return fmt.Errorf("monolith: wait %s: %w", p.name, err)
	}
	return nil
}
