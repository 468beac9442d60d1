package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// Interface guard: the spool remembers Idempotency-Keys.
var _ delivery.Keys = (*Spool)(nil)

// keyIndex remembers the Idempotency-Keys of accepted events for a window,
// in memory: a map for lookups, and the keys in commit order for expiry
// and the cap. A key is claimed (pending) by the request that publishes
// it and done once its record is durable.
type keyIndex struct {
	window time.Duration
	max    int

	mu      sync.Mutex
	entries map[[16]byte]keyEntry
	order   []orderItem // done keys, oldest first, from head on
	head    int
	evicted uint64 // dropped by the cap before their window ended
}

type keyEntry struct {
	pending bool
	fp      [16]byte
	eventID string
	recvMs  int64
	index   uint64 // the record's log index
}

type orderItem struct {
	key    [16]byte
	recvMs int64
	index  uint64
}

func newKeyIndex(window time.Duration, max int) *keyIndex {
	return &keyIndex{window: window, max: max, entries: make(map[[16]byte]keyEntry)}
}

// claim: see delivery.Keys.Claim. nowMs is the caller's clock.
func (k *keyIndex) claim(key [16]byte, nowMs int64) (delivery.Remembered, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e, ok := k.entries[key]
	switch {
	case ok && e.pending:
		return delivery.Remembered{}, false, delivery.ErrKeyInFlight
	case ok && !k.expired(e.recvMs, nowMs):
		return delivery.Remembered{EventID: e.eventID, ReceivedAt: e.recvMs, Fingerprint: e.fp}, true, nil
	}
	k.entries[key] = keyEntry{pending: true}
	return delivery.Remembered{}, false, nil
}

// release drops a pending claim.
func (k *keyIndex) release(key [16]byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.entries[key]; ok && e.pending {
		delete(k.entries, key)
	}
}

// done records a durable key: the first answer to it from now on. A key
// already done is kept as it is (the first answer wins, as on reload).
func (k *keyIndex) done(idem delivery.Idem, eventID string, index uint64, nowMs int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e, ok := k.entries[idem.Key]; ok && !e.pending && !k.expired(e.recvMs, nowMs) {
		return
	}
	if k.expired(idem.ReceivedAt, nowMs) {
		delete(k.entries, idem.Key) // a record older than the window (reload)
		return
	}
	k.entries[idem.Key] = keyEntry{fp: idem.Fingerprint, eventID: eventID, recvMs: idem.ReceivedAt, index: index}
	k.order = append(k.order, orderItem{key: idem.Key, recvMs: idem.ReceivedAt, index: index})
	k.trim(nowMs)
}

// trim drops expired keys from the front, then the oldest while over the
// cap. Called with mu held.
func (k *keyIndex) trim(nowMs int64) {
	for k.head < len(k.order) {
		it := k.order[k.head]
		over := len(k.order)-k.head > k.max
		if !over && !k.expired(it.recvMs, nowMs) {
			break
		}
		if e, ok := k.entries[it.key]; ok && !e.pending && e.index == it.index {
			delete(k.entries, it.key)
			if over && !k.expired(it.recvMs, nowMs) {
				k.evicted++
			}
		}
		k.order[k.head] = orderItem{}
		k.head++
	}
	if k.head > 1024 && k.head > len(k.order)/2 {
		k.order = append(k.order[:0], k.order[k.head:]...)
		k.head = 0
	}
}

func (k *keyIndex) expired(recvMs, nowMs int64) bool {
	return nowMs-recvMs >= k.window.Milliseconds()
}

// live returns the done keys, oldest first (compaction).
func (k *keyIndex) live() []keyRecord {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]keyRecord, 0, len(k.order)-k.head)
	for _, it := range k.order[k.head:] {
		if e, ok := k.entries[it.key]; ok && !e.pending && e.index == it.index {
			out = append(out, keyRecord{idem: delivery.Idem{Key: it.key, Fingerprint: e.fp, ReceivedAt: e.recvMs},
				eventID: e.eventID, index: e.index})
		}
	}
	return out
}

func (k *keyIndex) stats() (keys int, evicted uint64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.order) - k.head, k.evicted
}

// keyRecord is one entry of the keys file.
type keyRecord struct {
	idem    delivery.Idem
	eventID string
	index   uint64
}

// keysName is the file that keeps the keys of events whose records the
// log dropped (acked and truncated), so keys outlive their events' stay in
// the spool. The committer appends each keyed record's key to it as it
// commits (without fsync: the log has the record); it is fsynced before
// the log's front is truncated, so a key is never only in a dropped
// record. A crash can tear its unsynced tail: Open reads the log from
// the last key it holds. Shorter than 20 bytes: tidwall/wal ignores it.
const keysName = "keys"

// keysFile frames entries as u16 length | crc32c u32 | key [16] | fp [16] |
// received_at ms u64 | index u64 | event_id.
type keysFile struct {
	path string
	f    *os.File
	size int64
}

const keyEntryFixed = 16 + 16 + 8 + 8

func appendKeyRecord(b []byte, r keyRecord) []byte {
	n := keyEntryFixed + len(r.eventID)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	crcAt := len(b)
	b = append(b, 0, 0, 0, 0)
	b = append(b, r.idem.Key[:]...)
	b = append(b, r.idem.Fingerprint[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.idem.ReceivedAt))
	b = binary.BigEndian.AppendUint64(b, r.index)
	b = append(b, r.eventID...)
	binary.BigEndian.PutUint32(b[crcAt:], crc32.Checksum(b[crcAt+4:], castagnoli))
	return b
}

// readKeysFile returns the entries of the valid prefix of path and its
// length; a missing file is empty.
func readKeysFile(path string) ([]keyRecord, int64, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var out []keyRecord
	off := 0
	for len(b)-off >= 6 {
		n := int(binary.BigEndian.Uint16(b[off:]))
		if n < keyEntryFixed || len(b)-off-6 < n {
			break
		}
		body := b[off+6 : off+6+n]
		if binary.BigEndian.Uint32(b[off+2:]) != crc32.Checksum(body, castagnoli) {
			break
		}
		var r keyRecord
		copy(r.idem.Key[:], body[0:16])
		copy(r.idem.Fingerprint[:], body[16:32])
		r.idem.ReceivedAt = int64(binary.BigEndian.Uint64(body[32:40]))
		r.index = binary.BigEndian.Uint64(body[40:48])
		r.eventID = string(body[48:])
		out = append(out, r)
		off += 6 + n
	}
	return out, int64(off), nil
}

// openKeysFile opens path for appending at size, cutting a torn tail.
func openKeysFile(path string, size int64) (*keysFile, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, err
	}
	if err := f.Truncate(size); err != nil {
		_ = f.Close()
		return nil, err
	}
	if _, err := f.Seek(size, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, err
	}
	return &keysFile{path: path, f: f, size: size}, nil
}

func (kf *keysFile) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := kf.f.Write(b)
	kf.size += int64(n)
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	return nil
}

func (kf *keysFile) sync() error {
	if err := kf.f.Sync(); err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	return nil
}

// rewrite replaces the file with recs (compaction): a temporary file,
// fsynced, renamed over, and the directory fsynced.
func (kf *keysFile) rewrite(recs []keyRecord) error {
	var b []byte
	for _, r := range recs {
		b = appendKeyRecord(b, r)
	}
	tmp := kf.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	if err := os.Rename(tmp, kf.path); err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	if err := syncDir(filepath.Dir(kf.path)); err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	nf, err := openKeysFile(kf.path, int64(len(b)))
	if err != nil {
		return fmt.Errorf("keys file: %w", err)
	}
	_ = kf.f.Close()
	*kf = *nf
	return nil
}

func (kf *keysFile) close() error { return kf.f.Close() }

// Claim implements delivery.Keys: the first answer to key within the
// window, ErrKeyInFlight while its request is still publishing, or the
// claim.
func (s *Spool) Claim(key [16]byte) (delivery.Remembered, bool, error) {
	return s.keys.claim(key, s.now().UnixMilli())
}

// Release implements delivery.Keys.
func (s *Spool) Release(key [16]byte) { s.keys.release(key) }

func (s *Spool) releaseIdem(idem *delivery.Idem) {
	if idem != nil {
		s.keys.release(idem.Key)
	}
}

// markerEvery is how many records may be committed without a keyed one
// before the committer notes in the keys file how far the log is covered:
// after a crash, Open reads the log for keys only from the last marker.
const markerEvery = 4096

// recordKeys makes the keys of a durable batch (first index idx+1) the
// first answers to them, and appends them to the keys file. Called by the
// committer only.
func (s *Spool) recordKeys(batch []*appendReq, idx uint64) {
	now := s.now().UnixMilli()
	var b []byte
	for i, r := range batch {
		if r.idem == nil {
			continue
		}
		index := idx + uint64(i) + 1
		s.keys.done(*r.idem, r.eventID, index, now)
		b = appendKeyRecord(b, keyRecord{idem: *r.idem, eventID: r.eventID, index: index})
	}
	if b == nil {
		if s.keysMarked += uint64(len(batch)); s.keysMarked < markerEvery {
			return
		}
		b = appendKeyRecord(b, keyRecord{index: idx + uint64(len(batch))})
	}
	s.keysMarked = 0
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	if err := s.keysFile.write(b); err != nil {
		// The log holds the keys; a restart reads them back from it.
		s.fail(err)
		return
	}
	s.maybeCompactKeys()
}

// maybeCompactKeys rewrites the keys file with only the live keys once it
// is three times their size and at least a megabyte. Called with keysMu
// held.
func (s *Spool) maybeCompactKeys() {
	n, _ := s.keys.stats()
	live := int64(n) * (6 + keyEntryFixed + 36)
	if s.keysFile.size < 1<<20 || s.keysFile.size < 3*live {
		return
	}
	recs := append(s.keys.live(), keyRecord{index: s.last.Load()})
	if err := s.keysFile.rewrite(recs); err != nil {
		s.fail(err)
	}
}

// syncKeys makes every key of the log's records durable in the keys file:
// before the log's front is truncated.
func (s *Spool) syncKeys() error {
	s.keysMu.Lock()
	defer s.keysMu.Unlock()
	return s.keysFile.sync()
}

// loadKeys reads the keys file and then the log's records it does not
// cover (a crash loses its unsynced tail), appends those, and syncs: every
// key within the window is remembered again, and in the file before Open
// truncates anything. Called by Open, before settleCheckpoint.
func (s *Spool) loadKeys() error {
	s.keys = newKeyIndex(s.cfg.IdempotencyWindow, s.cfg.IdempotencyMaxKeys)
	path := filepath.Join(s.cfg.Dir, keysName)
	recs, size, err := readKeysFile(path)
	if err != nil {
		return fmt.Errorf("spool keys: %w", err)
	}
	if s.keysFile, err = openKeysFile(path, size); err != nil {
		return fmt.Errorf("spool keys: %w", err)
	}
	now := s.now().UnixMilli()
	var covered uint64
	for _, r := range recs {
		if r.idem.Key != ([16]byte{}) {
			s.keys.done(r.idem, r.eventID, r.index, now)
		}
		covered = max(covered, r.index)
	}
	first, _ := s.wal.FirstIndex()
	last, _ := s.wal.LastIndex()
	var b []byte
	found := 0
	for idx := max(first, covered+1); idx <= last && idx > 0; idx++ {
		data, err := s.read(idx)
		if err != nil {
			return fmt.Errorf("spool keys: read %d: %w", idx, err)
		}
		rec, err := decodeRecord(data)
		if err != nil || rec.msg.Idem == nil {
			continue
		}
		s.keys.done(*rec.msg.Idem, rec.msg.EventID, idx, now)
		b = appendKeyRecord(b, keyRecord{idem: *rec.msg.Idem, eventID: rec.msg.EventID, index: idx})
		found++
	}
	if last > covered {
		b = appendKeyRecord(b, keyRecord{index: last})
	}
	if err := s.keysFile.write(b); err != nil {
		return err
	}
	if err := s.keysFile.sync(); err != nil {
		return err
	}
	if n, _ := s.keys.stats(); n > 0 {
		s.log.Info("idempotency keys remembered", zap.Int("keys", n), zap.Int("read_from_log", found))
	}
	return nil
}
