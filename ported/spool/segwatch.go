package spool

import "os"

// segmentWatch tells the committer when a batch may have made tidwall/wal
// start a new segment file. A new file's directory entry is durable only
// once the directory itself is fsynced, and that costs about a third of a
// data fsync on ext4 even when nothing changed, so it is paid only when a
// segment may have been created rather than on every commit.
//
// bytes is an upper bound of the tail segment's size: it grows by every
// framed entry written and is reset from the file itself whenever the
// directory is read. wal starts a segment only once the tail reaches
// segmentSize, so while bytes stays below that no segment can have been
// created. Front truncation (the forwarder dropping acked entries) only
// shrinks or renames segments, which keeps the bound an upper bound; a
// rename seen as a new tail costs one needless directory fsync, never a
// missed one.
type segmentWatch struct {
	dir         string
	segmentSize int64
	tail        uint64 // first index of the newest segment seen
	bytes       int64
}

// newSegmentWatch reads the current tail. The caller fsyncs the directory
// once after opening the log, which covers everything created until now.
func newSegmentWatch(dir string, segmentSize int) (*segmentWatch, error) {
	w := &segmentWatch{dir: dir, segmentSize: int64(segmentSize)}
	if _, err := w.rescan(); err != nil {
		return nil, err
	}
	return w, nil
}

// wrote records a batch of n framed bytes and reports whether the directory
// must be fsynced before the batch is acknowledged.
func (w *segmentWatch) wrote(n int64) (syncDir bool, err error) {
	w.bytes += n
	if w.bytes < w.segmentSize {
		return false, nil
	}
	return w.rescan()
}

// rescan reads the newest segment; it reports a change of tail.
func (w *segmentWatch) rescan() (bool, error) {
	segs, err := listSegments(w.dir)
	if err != nil {
		return true, err
	}
	if len(segs) == 0 {
		// Only mid-truncation (wal's .START/.END files): stay pessimistic.
		return true, nil
	}
	newest := segs[len(segs)-1]
	changed := newest.first != w.tail
	w.tail = newest.first
	fi, err := os.Stat(newest.path)
	if err != nil {
		// Renamed under us by a front truncation: read again next batch.
		w.bytes = w.segmentSize
		return true, nil
	}
	w.bytes = fi.Size()
	return changed, nil
}
