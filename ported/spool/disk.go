package spool

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// segmentFile is one tidwall/wal segment: a file named by the 20-digit
// index of its first entry.
type segmentFile struct {
	first uint64
	path  string
}

// listSegments returns the complete segment files in dir, oldest first.
// In-progress truncation files (.START, .END, .TEMP) are left out: wal.Open
// settles them, and Dump must not read them twice.
func listSegments(dir string) ([]segmentFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segmentFile
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || len(name) != 20 {
			continue
		}
		idx, err := strconv.ParseUint(name, 10, 64)
		if err != nil || idx == 0 {
			continue
		}
		segs = append(segs, segmentFile{first: idx, path: filepath.Join(dir, name)})
	}
	slices.SortFunc(segs, func(a, b segmentFile) int { return compareU64(a.first, b.first) })
	return segs, nil
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// removeTempFiles deletes the .TEMP files tidwall/wal leaves behind when the
// process dies inside a truncation; wal.Open ignores them but never removes
// them.
func removeTempFiles(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".TEMP") {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// nextFrame splits one wal entry (uvarint length + data) off b. ok is false
// when b holds no complete entry.
func nextFrame(b []byte) (data []byte, n int, ok bool) {
	size, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < size {
		return nil, 0, false
	}
	return b[w : w+int(size)], w + int(size), true
}

// repairTornTail cuts the last segment back to its last complete entry.
// tidwall/wal refuses to open a log whose last entry is cut short (it has no
// repair option), and only the tail can be torn: it is the one file being
// appended to, and a segment is fsynced before the next one is created.
// It returns the number of bytes removed.
func repairTornTail(dir string) (int64, error) {
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		return 0, err
	}
	tail := segs[len(segs)-1].path
	b, err := os.ReadFile(tail)
	if err != nil {
		return 0, err
	}
	good := 0
	for good < len(b) {
		_, n, ok := nextFrame(b[good:])
		if !ok {
			break
		}
		good += n
	}
	if good == len(b) {
		return 0, nil
	}
	f, err := os.OpenFile(tail, os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(int64(good)); err != nil {
		return 0, fmt.Errorf("truncate %s: %w", tail, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync %s: %w", tail, err)
	}
	return int64(len(b) - good), f.Close()
}

// checkpointFile persists the index of the last entry acked by Kafka
// through a contiguous prefix. It is 16 bytes rewritten in place: index u64,
// CRC32C(index) u32, magic u32. A torn or unreadable checkpoint reads as "no
// checkpoint", which replays more (duplicates), never less.
type checkpointFile struct {
	f *os.File
}

const (
	checkpointName  = "checkpoint" // shorter than 20 bytes: wal ignores it
	checkpointMagic = 0x53504b31   // "SPK1"
)

func openCheckpoint(dir string) (*checkpointFile, uint64, bool, error) {
	path := filepath.Join(dir, checkpointName)
	idx, ok, err := readCheckpoint(path)
	if err != nil {
		return nil, 0, false, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, 0, false, err
	}
	return &checkpointFile{f: f}, idx, ok, nil
}

// readCheckpoint never writes: Dump uses it on a live spool.
func readCheckpoint(path string) (uint64, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(b) < 16 || binary.BigEndian.Uint32(b[12:16]) != checkpointMagic ||
		binary.BigEndian.Uint32(b[8:12]) != crc32.Checksum(b[:8], castagnoli) {
		return 0, false, nil
	}
	return binary.BigEndian.Uint64(b[:8]), true, nil
}

func (c *checkpointFile) write(idx uint64) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], idx)
	binary.BigEndian.PutUint32(b[8:12], crc32.Checksum(b[:8], castagnoli))
	binary.BigEndian.PutUint32(b[12:16], checkpointMagic)
	if _, err := c.f.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	if err := c.f.Sync(); err != nil {
		return fmt.Errorf("sync checkpoint: %w", err)
	}
	return nil
}

func (c *checkpointFile) close() error { return c.f.Close() }

// syncDir makes file creations and renames in dir durable (a new segment's
// directory entry), which fsync on the file alone does not on every
// filesystem.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// idName holds the spool's id, which every message it forwards carries in
// its position header. It is random, made once with the directory, so two
// spools writing one topic (a fleet) never take each other's records for
// their own, and a directory wiped and started again (indexes from 1) is a
// new spool.
const idName = "spool-id"

// loadID returns the id in dir, creating it when missing or unreadable.
func loadID(dir string) (string, error) {
	path := filepath.Join(dir, idName)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); validID(id) {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	var raw [8]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := hex.EncodeToString(raw[:])
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o640); err != nil {
		return "", err
	}
	if err := syncFile(tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	return id, syncDir(dir)
}

func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
