package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"time"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// ErrCorruptRecord means a spooled record failed its checksum or framing.
var ErrCorruptRecord = errors.New("spool: corrupt record")

// castagnoli is CRC32C: hardware-accelerated on amd64/arm64 and better at
// catching burst errors than IEEE.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	recordVersion = 1
	// recordKeyed is a record with an Idempotency-Key: after the header,
	// flags u8 | key digest [16] | body fingerprint [16] | received_at ms u64.
	recordKeyed = 2
	// crc(4) version(1) received-at unix ns(8)
	recordHeader = 4 + 1 + 8
	keyedHeader  = 1 + 16 + 16 + 8

	// flagKeyOnly marks a keyed record without an event: `delivery:
	// direct` delivered the event itself and the spool only keeps its key.
	// The forwarder passes over it.
	flagKeyOnly = 1
)

// record is one spooled event, or only an event's Idempotency-Key.
type record struct {
	msg     delivery.Message
	at      time.Time // when the spool accepted it
	keyOnly bool
}

// encodeRecord lays out a record as
//
//	crc32c(rest) u32 | version u8 | received_at unix ns u64 | uvarint len(key) key | uvarint len(event_id) event_id | value
//
// tidwall/wal frames entries with a bare length prefix and no checksum, so a
// zero-filled or garbled tail would read back as valid entries; the CRC is
// what tells a record from debris.
//
// or, for a message with an Idempotency-Key (m.Idem), version 2 with the
// keyed header after received_at. keyOnly records the key without the event.
func encodeRecord(m delivery.Message, at time.Time, keyOnly bool) []byte {
	n := recordHeader + keyedHeader + binary.MaxVarintLen64*2 + len(m.Key) + len(m.EventID) + len(m.Value)
	b := make([]byte, 4, n)
	if m.Idem == nil {
		b = append(b, recordVersion)
		b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	} else {
		b = append(b, recordKeyed)
		b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
		var flags byte
		if keyOnly {
			flags, m.Key, m.Value = flagKeyOnly, nil, nil
		}
		b = append(b, flags)
		b = append(b, m.Idem.Key[:]...)
		b = append(b, m.Idem.Fingerprint[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(m.Idem.ReceivedAt))
	}
	b = binary.AppendUvarint(b, uint64(len(m.Key)))
	b = append(b, m.Key...)
	b = binary.AppendUvarint(b, uint64(len(m.EventID)))
	b = append(b, m.EventID...)
	b = append(b, m.Value...)
	binary.BigEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
	return b
}

// validRecord reports whether b carries a record whose checksum matches.
func validRecord(b []byte) bool {
	return len(b) >= recordHeader && binary.BigEndian.Uint32(b) == crc32.Checksum(b[4:], castagnoli)
}

// decodeRecord parses b; the returned message aliases b.
func decodeRecord(b []byte) (record, error) {
	if !validRecord(b) || (b[4] != recordVersion && b[4] != recordKeyed) {
		return record{}, ErrCorruptRecord
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(b[5:13])))
	rest := b[recordHeader:]
	var idem *delivery.Idem
	keyOnly := false
	if b[4] == recordKeyed {
		if len(rest) < keyedHeader {
			return record{}, ErrCorruptRecord
		}
		idem = new(delivery.Idem)
		keyOnly = rest[0]&flagKeyOnly != 0
		copy(idem.Key[:], rest[1:17])
		copy(idem.Fingerprint[:], rest[17:33])
		idem.ReceivedAt = int64(binary.BigEndian.Uint64(rest[33:41]))
		rest = rest[keyedHeader:]
	}
	key, rest, ok := field(rest)
	if !ok {
		return record{}, ErrCorruptRecord
	}
	id, rest, ok := field(rest)
	if !ok {
		return record{}, ErrCorruptRecord
	}
	return record{msg: delivery.Message{Key: key, Value: rest, EventID: string(id), Idem: idem}, at: at, keyOnly: keyOnly}, nil
}

func field(b []byte) (f, rest []byte, ok bool) {
	n, w := binary.Uvarint(b)
	if w <= 0 || uint64(len(b)-w) < n {
		return nil, nil, false
	}
	return b[w : w+int(n)], b[w+int(n):], true
}

// framedSize is the on-disk size of a wal entry holding n bytes: tidwall/wal's
// binary format is uvarint(n) followed by the data.
func framedSize(n int) int64 {
	var tmp [binary.MaxVarintLen64]byte
	return int64(binary.PutUvarint(tmp[:], uint64(n)) + n)
}
