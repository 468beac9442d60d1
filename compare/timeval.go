package compare

import (
	"strconv"
	"time"
)

// A clock value is a JSON string in RFC 3339 form (a 'T' or a space between
// date and time, any number of fraction digits, Z, ±hh:mm, ±hhmm or no
// zone) or an integer of Unix seconds (10 digits) or milliseconds (13
// digits). Its layout is what two sides must spell alike; its precision is
// how much earlier than the instant it was taken it may read, since clocks
// are truncated, not rounded, when printed.

// timeLayout names how a clock value is spelled.
type timeLayout struct {
	epoch byte // 's' or 'm' for a Unix number; 0 for a string
	sep   byte // 'T' or ' '
	frac  int8 // fraction digits
	zone  byte // 'Z', ':' (±hh:mm), '4' (±hhmm), 0 (none)
}

// fracAny marks a layout whose values trim trailing fraction zeros, so
// the number of fraction digits varies.
const fracAny = -1

// sameBut reports whether l and o differ in their fraction digits only.
func (l timeLayout) sameBut(o timeLayout) bool {
	l.frac, o.frac = 0, 0
	return l == o
}

// matches reports whether a value of layout l has layout pattern p.
func (l timeLayout) matches(p timeLayout) bool {
	if p.frac == fracAny {
		return l.sameBut(p)
	}
	return l == p
}

func (l timeLayout) String() string {
	switch l.epoch {
	case 's':
		return "Unix seconds"
	case 'm':
		return "Unix milliseconds"
	}
	b := []byte("YYYY-MM-DD")
	b = append(b, l.sep)
	b = append(b, "hh:mm:ss"...)
	switch {
	case l.frac == fracAny:
		b = append(b, "[.f…]"...)
	case l.frac > 0:
		b = append(b, '.')
		for range l.frac {
			b = append(b, 'f')
		}
	}
	switch l.zone {
	case 'Z':
		b = append(b, 'Z')
	case ':':
		b = append(b, "±hh:mm"...)
	case '4':
		b = append(b, "±hhmm"...)
	}
	return string(b)
}

// precision is one unit of the layout's last digit.
func (l timeLayout) precision() time.Duration {
	switch l.epoch {
	case 's':
		return time.Second
	case 'm':
		return time.Millisecond
	}
	if l.frac == fracAny {
		return time.Nanosecond // trailing zeros are trimmed, nothing else
	}
	p := time.Second
	for range l.frac {
		p /= 10
	}
	return max(p, 1)
}

// parseClockString reads s as an RFC 3339-like time. ok is false for
// anything else.
func parseClockString(s string) (t time.Time, l timeLayout, ok bool) {
	// YYYY-MM-DDThh:mm:ss is 19 bytes.
	if len(s) < 19 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' || (s[10] != 'T' && s[10] != ' ') {
		return t, l, false
	}
	num := func(a, b int) (int, bool) {
		n := 0
		for i := a; i < b; i++ {
			if !isDigit(s[i]) {
				return 0, false
			}
			n = n*10 + int(s[i]-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(5, 7)
	d, ok3 := num(8, 10)
	h, ok4 := num(11, 13)
	mi, ok5 := num(14, 16)
	se, ok6 := num(17, 19)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 {
		return t, l, false
	}
	l.sep = s[10]
	i := 19
	ns := 0
	if i < len(s) && s[i] == '.' {
		i++
		start := i
		for i < len(s) && isDigit(s[i]) {
			if i-start < 9 {
				ns = ns*10 + int(s[i]-'0')
			}
			i++
		}
		if i == start || i-start > 18 {
			return t, l, false
		}
		l.frac = int8(i - start)
		for k := min(i-start, 9); k < 9; k++ {
			ns *= 10
		}
	}
	loc := time.UTC
	switch {
	case i == len(s):
	case s[i] == 'Z' && i+1 == len(s):
		l.zone = 'Z'
	case (s[i] == '+' || s[i] == '-') && (len(s)-i == 6 && s[i+3] == ':' || len(s)-i == 5):
		oh, okh := num(i+1, i+3)
		m0 := i + 3
		l.zone = '4'
		if s[m0] == ':' {
			m0++
			l.zone = ':'
		}
		om, okm := num(m0, m0+2)
		if !okh || !okm || oh > 23 || om > 59 {
			return t, l, false
		}
		off := (oh*60 + om) * 60
		if s[i] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return t, l, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, se, ns, loc), l, true
}

// parseClockNumber reads an integer literal of 10 digits as Unix seconds
// and one of 13 as Unix milliseconds.
func parseClockNumber(lit string) (t time.Time, l timeLayout, ok bool) {
	if len(lit) != 10 && len(lit) != 13 {
		return t, l, false
	}
	n, err := strconv.ParseInt(lit, 10, 64)
	if err != nil || n <= 0 {
		return t, l, false
	}
	if len(lit) == 10 {
		return time.Unix(n, 0), timeLayout{epoch: 's'}, true
	}
	return time.UnixMilli(n), timeLayout{epoch: 'm'}, true
}

// Window is when one side produced its answer: from just before the
// proxy called it to just after its answer arrived.
type Window struct {
	Start, End time.Time
}

// Known reports whether the window was measured.
func (w Window) Known() bool { return !w.Start.IsZero() && !w.End.Before(w.Start) }

// offset says where t lies relative to w, allowing for the layout's
// precision and for skew between the two hosts' clocks: 0 inside, else how
// far before (negative) or after (positive) it lies. The window must be
// Known.
func (w Window) offset(t time.Time, prec, skew time.Duration) time.Duration {
	if lo := w.Start.Add(-skew - prec); !t.After(lo) {
		return t.Sub(lo)
	}
	if hi := w.End.Add(skew); t.After(hi) {
		return t.Sub(hi)
	}
	return 0
}
