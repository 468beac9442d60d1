package events

import (
	"crypto/sha256"
)

// IdempotencyKeyHeader is the request header of the IETF httpapi
// idempotency-key draft.
const IdempotencyKeyHeader = "Idempotency-Key"

// maxKeyLen bounds a key (the draft sets none; UUIDs are 36).
const maxKeyLen = 255

// ParseIdempotencyKey reads an Idempotency-Key value: the draft's
// structured-field string ("…", with \" and \\ the only escapes), or, as
// many clients send, the bare key. Either way the key is 1 to 255
// characters of visible ASCII (a quoted one may hold spaces); surrounding
// spaces and tabs are not part of it. The PHP twin applies the same rule.
func ParseIdempotencyKey(raw []byte) (string, bool) {
	raw = trimOWS(raw)
	if len(raw) == 0 {
		return "", false
	}
	if raw[0] != '"' {
		for _, c := range raw {
			if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return "", false
			}
		}
		if len(raw) > maxKeyLen {
			return "", false
		}
		return string(raw), true
	}
	if len(raw) < 2 || raw[len(raw)-1] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	key := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '\\':
			if i+1 == len(inner) || (inner[i+1] != '"' && inner[i+1] != '\\') {
				return "", false
			}
			i++
			key = append(key, inner[i])
		case c == '"', c < 0x20, c > 0x7e:
			return "", false
		default:
			key = append(key, c)
		}
	}
	if len(key) < 1 || len(key) > maxKeyLen {
		return "", false
	}
	return string(key), true
}

// KeyDigest is what the spool keeps of a key: its SHA-256, cut to 128 bits.
func KeyDigest(key string) [16]byte {
	sum := sha256.Sum256([]byte(key))
	return [16]byte(sum[:16])
}

// Fingerprint tells a retry (the same body, byte for byte) from a reuse of
// the key: SHA-256 of the body, cut to 128 bits.
func Fingerprint(body []byte) [16]byte {
	sum := sha256.Sum256(body)
	return [16]byte(sum[:16])
}
