package events

import "strconv"

// Money arithmetic is done in thousandths ("milli") of the major unit, held
// in an int64: three digits cover every currency's minor units, and with
// amounts capped at maxMoney the largest item sum (50 × 1000 × 10^12) stays
// far below 2^63 — in PHP's int too, so neither side ever touches a float
// sum. 0.1 + 0.2 is 100 + 200 = 300 milli here, on both sides.

const (
	maxMoney      = 1_000_000_000 // major units; larger amounts or prices are refused
	milliDigits   = 3
	sumToleranceM = 10 // 0.01 major units, in milli
)

// moneyResult is what checking one amount or price can find.
type moneyResult uint8

const (
	moneyOK moneyResult = iota
	moneyNotPositive
	moneyTooLarge
	moneyPrecision // more fraction digits than the currency has
)

// money checks a number node (already known to be kindInt or kindFloat)
// against 0 < v <= maxMoney and, when minor >= 0, against the currency's
// minor unit digits, and returns its value in milli.
//
// The decimal digits of a float are those of the shortest text that reads
// back as the same float64 (strconv's 'e', -1 here; PHP's json_encode with
// serialize_precision=-1 there): both sides parse the literal to the same
// correctly rounded double and print the same shortest digits, so "12.50"
// and 1.25e1 are both 12.5, and 0.1 stays 0.1. A literal with more digits
// than a double holds (1.000000000000000000001) is the double it rounds to.
func money(p *parser, n *node, minor int) (int64, moneyResult) {
	if n.kind == kindInt {
		switch {
		case n.i <= 0:
			return 0, moneyNotPositive
		case n.i > maxMoney:
			return 0, moneyTooLarge
		}
		return n.i * 1000, moneyOK
	}
	f := p.float(n)
	switch {
	case f <= 0: // -0.0 and -Inf included; NaN cannot come out of JSON
		return 0, moneyNotPositive
	case f > maxMoney: // +Inf included
		return 0, moneyTooLarge
	}
	var buf [32]byte
	digits, decpt := shortest(buf[:0], f)
	frac := len(digits) - decpt
	if frac < 0 {
		frac = 0
	}
	if minor >= 0 && frac > minor {
		return 0, moneyPrecision
	}
	if frac > milliDigits {
		// Unknown currency: the sign and range rules still apply, but
		// there is no exact milli value to report.
		return 0, moneyOK
	}
	var m int64
	for _, c := range digits {
		m = m*10 + int64(c-'0')
	}
	for i := len(digits) - decpt; i < milliDigits; i++ {
		m *= 10
	}
	return m, moneyOK
}

// shortest returns the significant digits (no leading or trailing zeros) of
// the shortest round-trip decimal form of f > 0, and the position of the
// decimal point relative to them: f = 0.DIGITS × 10^decpt.
func shortest(buf []byte, f float64) ([]byte, int) {
	b := strconv.AppendFloat(buf, f, 'e', -1, 64) // d[.ddd]e±XX
	e := 0
	for i := range b {
		if b[i] == 'e' {
			x, _ := strconv.Atoi(string(b[i+1:]))
			e = x
			b = b[:i]
			break
		}
	}
	d := b[:1]
	if len(b) > 2 {
		d = append(d, b[2:]...) // overlapping copy left over the '.'
	}
	for len(d) > 1 && d[len(d)-1] == '0' {
		d = d[:len(d)-1]
	}
	return d, e + 1
}
