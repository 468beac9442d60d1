package events

import "time"

// instant is a point in time as whole Unix seconds plus nanoseconds, the
// form in which the PHP twin (no DateTime parsing quirks, no float
// microtime) computes the same comparisons with plain integers.
type instant struct {
	sec  int64
	nsec int64 // 0..999999999
}

func instantOf(t time.Time) instant { return instant{t.Unix(), int64(t.Nanosecond())} }

func (a instant) time() time.Time { return time.Unix(a.sec, a.nsec).UTC() }

func (a instant) before(b instant) bool {
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec)
}

// parseRFC3339 accepts exactly
//
//	YYYY-MM-DD ("T"|"t") hh:mm:ss [ "." 1*9DIGIT ] ( "Z" | "z" | ("+"|"-") hh:mm )
//
// (RFC 3339 §5.6, with the lower-case letters its note allows, at most
// nanosecond precision and no leap second) with real calendar dates and
// offsets up to ±23:59. It is written out rather than time.Parse so that
// the PHP twin can implement the identical grammar.
func parseRFC3339(s []byte) (instant, bool) {
	if len(s) < 20 {
		return instant{}, false
	}
	year, ok1 := digits(s, 0, 4)
	month, ok2 := digits(s, 5, 2)
	day, ok3 := digits(s, 8, 2)
	hour, ok4 := digits(s, 11, 2)
	minute, ok5 := digits(s, 14, 2)
	sec, ok6 := digits(s, 17, 2)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return instant{}, false
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59 {
		return instant{}, false
	}
	i := 19
	var nsec int64
	if s[i] == '.' {
		i++
		n := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if n == 9 {
				return instant{}, false
			}
			nsec = nsec*10 + int64(s[i]-'0')
			n++
			i++
		}
		if n == 0 {
			return instant{}, false
		}
		for ; n < 9; n++ {
			nsec *= 10
		}
	}
	if i >= len(s) {
		return instant{}, false
	}
	var offset int64
	switch s[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(s)-i != 6 || s[i+3] != ':' {
			return instant{}, false
		}
		oh, ok1 := digits(s, i+1, 2)
		om, ok2 := digits(s, i+4, 2)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return instant{}, false
		}
		offset = (oh*60 + om) * 60
		if s[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return instant{}, false
	}
	if i != len(s) {
		return instant{}, false
	}
	unix := daysFromCivil(year, month, day)*86400 + hour*3600 + minute*60 + sec - offset
	return instant{unix, nsec}, true
}

func digits(s []byte, at, n int) (int64, bool) {
	var v int64
	for _, c := range s[at : at+n] {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

func daysIn(year, month int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is days since 1970-01-01 of a proleptic Gregorian date
// (Howard Hinnant's algorithm; the PHP twin uses the same integer steps).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// appendMillis appends t in UTC as "2006-01-02T15:04:05.000Z", the only
// timestamp form the intake writes (milliseconds truncated, not rounded).
func appendMillis(dst []byte, t time.Time) []byte {
	return t.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
}
