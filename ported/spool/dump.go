package spool

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// DumpRecord is one line of Dump's output.
type DumpRecord struct {
	Index      uint64          `json:"index"`
	EventID    string          `json:"event_id,omitempty"`
	Key        string          `json:"key,omitempty"`
	ReceivedAt *time.Time      `json:"received_at,omitempty"`
	Value      json.RawMessage `json:"value,omitempty"`
	// Error is set instead of the fields above for a record that fails its
	// checksum.
	Error string `json:"error,omitempty"`
}

// Dump writes every event in the spool at dir not yet acked by Kafka as
// JSONL, oldest first (the `strangler spool` command). It only reads, so it
// is safe while the proxy runs: segments the forwarder deletes meanwhile
// were acked, and a record being appended is left out until complete.
func Dump(dir string, w io.Writer) error {
	acked, _, err := readCheckpoint(filepath.Join(dir, checkpointName))
	if err != nil {
		return fmt.Errorf("spool dump: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("spool dump: %w", err)
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	printed := acked
	for _, seg := range segs {
		b, err := os.ReadFile(seg.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // truncated away after the listing: acked
		}
		if err != nil {
			return fmt.Errorf("spool dump: %w", err)
		}
		for idx := seg.first; len(b) > 0; idx++ {
			data, n, ok := nextFrame(b)
			if !ok {
				break // a torn tail or an append in progress
			}
			b = b[n:]
			if idx <= printed {
				continue
			}
			printed = idx
			d, ok := dumpRecord(idx, data)
			if !ok {
				continue // only an Idempotency-Key: no event waits
			}
			if err := enc.Encode(d); err != nil {
				return fmt.Errorf("spool dump: %w", err)
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("spool dump: %w", err)
	}
	return nil
}

func dumpRecord(idx uint64, data []byte) (DumpRecord, bool) {
	rec, err := decodeRecord(data)
	if err != nil {
		return DumpRecord{Index: idx, Error: err.Error()}, true
	}
	if rec.keyOnly {
		return DumpRecord{}, false
	}
	at := rec.at.UTC()
	d := DumpRecord{Index: idx, EventID: rec.msg.EventID, Key: string(rec.msg.Key), ReceivedAt: &at}
	if json.Valid(rec.msg.Value) {
		d.Value = rec.msg.Value
	} else {
		// Not JSON (should not happen: the intake spools normalised JSON);
		// keep it readable and the line valid.
		d.Value, _ = json.Marshal(string(rec.msg.Value))
	}
	return d, true
}
