package campaigns

import (
	"encoding/base64"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

// The JSON here is written by hand so that it is byte-identical to PHP's
// json_encode($v, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE) and costs
// no allocation. encoding/json differs: it escapes <, > and & by default.

// appendTime appends t as "2006-01-02T15:04:05Z" (UTC; PHP's
// gmdate('Y-m-d\TH:i:s\Z')), several times faster than AppendFormat. Years
// are 1970..9999: campaign.NewSet refuses others.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append2(b, int(mo), '-')
	b = append2(b, d, 'T')
	b = append2(b, h, ':')
	b = append2(b, mi, ':')
	return append2(b, s, 'Z')
}

func append2(b []byte, n int, sep byte) []byte {
	return append(b, byte('0'+n/10), byte('0'+n%10), sep)
}

// appendCampaign appends the public representation of c at now.
func appendCampaign(b []byte, c *campaign.Campaign, now time.Time) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"advertiser_id":`...)
	b = appendString(b, c.AdvertiserID)
	b = append(b, `,"name":`...)
	b = appendString(b, c.Name)
	b = append(b, `,"status":`...)
	b = appendString(b, c.Status)
	b = append(b, `,"countries":[`...)
	for i, cc := range c.Countries {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, cc)
	}
	b = append(b, `],"starts_at":"`...)
	b = appendTime(b, c.StartsAt)
	b = append(b, `","ends_at":"`...)
	b = appendTime(b, c.EndsAt)
	b = append(b, `","budget":{"amount_minor":`...)
	b = strconv.AppendInt(b, c.Budget.AmountMinor, 10)
	b = append(b, `,"currency":`...)
	b = appendString(b, c.Budget.Currency)
	b = append(b, `},"active":`...)
	b = strconv.AppendBool(b, c.ActiveAt(now))
	return append(b, '}')
}

// appendError appends {"error":…,"message":…[,"field":…][,"request_id":…]}.
func appendError(b []byte, code, message, field, requestID string) []byte {
	b = append(b, `{"error":`...)
	b = appendString(b, code)
	b = append(b, `,"message":`...)
	b = appendString(b, message)
	if field != "" {
		b = append(b, `,"field":`...)
		b = appendString(b, field)
	}
	if requestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendString(b, requestID)
	}
	return append(b, '}')
}

// appendCursor appends the opaque cursor for "after id".
func appendCursor(b []byte, id string) []byte {
	return base64.RawURLEncoding.AppendEncode(b, []byte(id))
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way PHP's json_encode does with
// JSON_UNESCAPED_SLASHES|JSON_UNESCAPED_UNICODE: UTF-8 kept as is except
// U+2028/U+2029, short escapes for \b \f \n \r \t, \u00xx (lower-case hex)
// for other control characters. s must be valid UTF-8 (campaign.NewSet and
// the callers guarantee it).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < 0xe2 {
			i++
			continue
		}
		if c >= 0xe2 {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != '\u2028' && r != '\u2029' {
				i += size
				continue
			}
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
