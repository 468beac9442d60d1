package session

import (
	"fmt"
)

// Handler names PHP's session.serialize_handler: how $_SESSION is turned
// into the bytes the save handler stores.
type Handler string

// The serialize handlers PHP ships.
const (
	// PHPSerialize (php_serialize) stores serialize($_SESSION): one array.
	// The recommended handler: keys may be anything, and it is plain
	// serialize() output.
	PHPSerialize Handler = "php_serialize"
	// PHP (php, PHP's default) stores name|value for each top-level name.
	PHP Handler = "php"
	// PHPBinary (php_binary) stores a length byte, the name, and the value,
	// for each top-level name (names of at most 127 bytes).
	PHPBinary Handler = "php_binary"
)

// Valid reports a known handler.
func (h Handler) Valid() bool { return h == PHPSerialize || h == PHP || h == PHPBinary }

// Decode parses session data written by PHP with handler h into the
// session's top-level array ($_SESSION). Empty data is an empty session, as
// in PHP. Objects, references and anything past lim are refused with a
// *DecodeError; PHP would have decoded some of what is refused here (an
// object, an out-of-range int), never the other way round.
func Decode(h Handler, data []byte, lim Limits) (*Array, error) {
	lim = lim.WithDefaults()
	p := &parser{h: h, data: data, lim: lim}
	if len(data) > lim.MaxBytes {
		return nil, p.fail(ErrTooLarge, fmt.Sprintf("%d bytes, over %d", len(data), lim.MaxBytes))
	}
	if len(data) == 0 {
		return &Array{}, nil
	}
	switch h {
	case PHPSerialize:
		return p.decodeSerialize()
	case PHP:
		return p.decodePHP()
	case PHPBinary:
		return p.decodeBinary()
	}
	return nil, fmt.Errorf("session: unknown serialize handler %q", h)
}

// decodeSerialize is PS_SERIALIZER_DECODE_FUNC(php_serialize): one
// serialized value, which must be an array. PHP ignores bytes after it, and
// so does this.
func (p *parser) decodeSerialize() (*Array, error) {
	if p.data[0] != 'a' {
		if p.data[0] == 'O' || p.data[0] == 'C' || p.data[0] == 'E' {
			return nil, p.fail(ErrObject, string(p.data[0])+":")
		}
		return nil, p.fail(ErrMalformed, "session is not an array")
	}
	v, err := p.value(-1) // the top-level array is depth 0
	if err != nil {
		return nil, err
	}
	return v.a, nil
}

// decodePHP is PS_SERIALIZER_DECODE_FUNC(php): name|value repeated. Like
// PHP it stops without error at trailing bytes holding no '|', and a repeated
// name's later value wins.
func (p *parser) decodePHP() (*Array, error) {
	top := &Array{}
	for p.pos < len(p.data) {
		bar := -1
		for i := p.pos; i < len(p.data); i++ {
			if p.data[i] == '|' {
				bar = i
				break
			}
		}
		if bar < 0 {
			break
		}
		name := string(p.data[p.pos:bar])
		p.pos = bar + 1
		v, err := p.value(0)
		if err != nil {
			return nil, err
		}
		top.set(Key{s: name}, v)
	}
	return top, nil
}

// decodeBinary is PS_SERIALIZER_DECODE_FUNC(php_binary): a length byte
// (its top bit, PHP 5's "undefined" marker, is ignored as PHP 8 does), the
// name, the value, repeated.
func (p *parser) decodeBinary() (*Array, error) {
	top := &Array{}
	for p.pos < len(p.data) {
		n := int(p.data[p.pos] & 0x7f)
		if p.pos+n >= len(p.data)-1 {
			return nil, p.fail(ErrMalformed, "name runs past the end")
		}
		name := string(p.data[p.pos+1 : p.pos+1+n])
		p.pos += n + 1
		v, err := p.value(0)
		if err != nil {
			return nil, err
		}
		top.set(Key{s: name}, v)
	}
	return top, nil
}
