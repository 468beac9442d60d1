package session

import "fmt"

// SIDPolicy is the shape of the ids PHP issues: php.ini's
// session.sid_length and session.sid_bits_per_character. Go only ever
// reads ids of that shape, so a cookie PHP could not have issued is "no
// session" before any store is asked.
type SIDPolicy struct {
	// Length is session.sid_length, 22..256. Zero: DefaultSIDLength.
	Length int `mapstructure:"sid_length"`
	// BitsPerCharacter is session.sid_bits_per_character, 4..6. Zero:
	// DefaultSIDBitsPerCharacter.
	BitsPerCharacter int `mapstructure:"sid_bits_per_character"`
}

// The values of php.ini-production (and so of Debian's and Ubuntu's
// php.ini). PHP without a php.ini uses 32 and 4.
const (
	DefaultSIDLength           = 26
	DefaultSIDBitsPerCharacter = 5
)

// WithDefaults fills the zero fields.
func (p SIDPolicy) WithDefaults() SIDPolicy {
	if p.Length == 0 {
		p.Length = DefaultSIDLength
	}
	if p.BitsPerCharacter == 0 {
		p.BitsPerCharacter = DefaultSIDBitsPerCharacter
	}
	return p
}

// Validate checks the ranges PHP 8.2 accepts for the two settings.
func (p SIDPolicy) Validate() error {
	if p.Length < 22 || p.Length > 256 {
		return fmt.Errorf("sid_length %d: PHP accepts 22..256", p.Length)
	}
	if p.BitsPerCharacter < 4 || p.BitsPerCharacter > 6 {
		return fmt.Errorf("sid_bits_per_character %d: PHP accepts 4, 5 or 6", p.BitsPerCharacter)
	}
	return nil
}

// Valid reports whether id has the length and alphabet of the ids PHP
// issues under p (defaults applied). The alphabet is PHP's bin_to_readable
// table (ext/session/session.c), "0-9a-zA-Z,-", of which 4, 5 or 6 bits per
// character use the first 16, 32 or 64.
func (p SIDPolicy) Valid(id []byte) bool {
	if len(id) != p.Length {
		return false
	}
	n := byte(1) << p.BitsPerCharacter
	for _, c := range id {
		var v byte
		switch {
		case c >= '0' && c <= '9':
			v = c - '0'
		case c >= 'a' && c <= 'z':
			v = c - 'a' + 10
		case c >= 'A' && c <= 'Z':
			v = c - 'A' + 36
		case c == ',':
			v = 62
		case c == '-':
			v = 63
		default:
			return false
		}
		if v >= n {
			return false
		}
	}
	return true
}
