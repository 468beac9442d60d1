// Package filestamp tells whether a file changed since it was last read:
// its size, modification time and inode, through symlinks, so a renewal
// that writes a new file and renames it over the old one (certbot,
// cert-manager) or repoints a link (certbot's live/, a Kubernetes secret
// volume's ..data swap) counts as a change.
package filestamp

import (
	"os"
	"syscall"
	"time"
)

// Stamp identifies one version of a file. Comparable with ==.
type Stamp struct {
	size  int64
	mod   time.Time
	inode uint64
}

// Of is path's current stamp.
func Of(path string) (Stamp, error) {
	st, err := os.Stat(path)
	if err != nil {
		return Stamp{}, err
	}
	s := Stamp{size: st.Size(), mod: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.inode = sys.Ino
	}
	return s, nil
}
