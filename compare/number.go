package compare

import (
	"math"
	"strconv"
)

// numbersEqual compares two valid JSON number literals as decimals, so 1.0
// equals 1 and 1e2 equals 100 without float rounding (IDs beyond 2^53 stay
// exact), then within tol when tol > 0.
func numbersEqual(a, b string, tol float64) bool {
	if a == b {
		return true
	}
	var ba, bb [48]byte
	da, oka := decimalOf(a, ba[:0])
	db, okb := decimalOf(b, bb[:0])
	if oka && okb && da.neg == db.neg && da.exp == db.exp && string(da.digits) == string(db.digits) {
		return true
	}
	if tol > 0 {
		fa, erra := strconv.ParseFloat(a, 64)
		fb, errb := strconv.ParseFloat(b, 64)
		// ParseFloat reports range errors with ±Inf: such numbers are only
		// equal as decimals.
		return erra == nil && errb == nil && math.Abs(fa-fb) <= tol
	}
	return false
}

// decimal is 0.digits × 10^exp with no leading or trailing zero digit;
// zero has no digits, exp 0 and neg false.
type decimal struct {
	neg    bool
	digits []byte
	exp    int
}

// decimalOf parses a valid JSON number. ok is false when the exponent is
// too large to handle, and the caller falls back on the literal text.
func decimalOf(s string, buf []byte) (d decimal, ok bool) {
	i := 0
	if s[0] == '-' {
		d.neg = true
		i++
	}
	point := 0
	for ; i < len(s) && isDigit(s[i]); i++ {
		buf = append(buf, s[i])
		point++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && isDigit(s[i]); i++ {
			buf = append(buf, s[i])
		}
	}
	e := 0
	if i < len(s) { // exponent
		i++
		eneg := false
		if s[i] == '+' || s[i] == '-' {
			eneg = s[i] == '-'
			i++
		}
		for ; i < len(s); i++ {
			e = e*10 + int(s[i]-'0')
			if e > 1e9 {
				return d, false
			}
		}
		if eneg {
			e = -e
		}
	}
	lead := 0
	for lead < len(buf) && buf[lead] == '0' {
		lead++
	}
	buf = buf[lead:]
	point -= lead
	for len(buf) > 0 && buf[len(buf)-1] == '0' {
		buf = buf[:len(buf)-1]
	}
	if len(buf) == 0 {
		return decimal{}, true
	}
	d.digits, d.exp = buf, point+e
	return d, true
}
