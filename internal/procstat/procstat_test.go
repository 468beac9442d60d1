package procstat

import (
	"os"
	"strings"
	"testing"
)

func TestOwnProcess(t *testing.T) {
	if rss := RSS(os.Getpid()); rss < 1<<20 {
		t.Errorf("RSS of this test process = %d bytes", rss)
	}
	if StatusKB(os.Getpid(), "NoSuchKey:") != 0 {
		t.Error("a missing key read as non-zero")
	}
	if RSS(-1) != 0 {
		t.Error("RSS of no process is not 0")
	}
	if la := LoadAvg(); len(strings.Fields(la)) != 3 {
		t.Errorf("LoadAvg = %q", la)
	}
}
