package events

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/strangler-proxy/strangler/ported/phpjson"
)

// runeCount is the length in Unicode code points, PHP's
// preg_match_all('/./su', $s) over valid UTF-8.
func runeCount(s []byte) int { return utf8.RuneCount(s) }

// AppendJSON appends the forwarded form of e (CONTRACT.md, "Forwarded
// event"): every key always present, in this order, absent values as null,
// money as decimal strings with exactly the currency's minor digits.
func (e *Event) AppendJSON(dst []byte, eventID string, receivedAt time.Time) []byte {
	dst = append(dst, `{"schema_version":`...)
	dst = strconv.AppendInt(dst, SchemaVersion, 10)
	dst = append(dst, `,"event_id":`...)
	dst = phpjson.AppendString(dst, eventID)
	dst = append(dst, `,"type":`...)
	dst = phpjson.AppendString(dst, e.Type)
	dst = append(dst, `,"occurred_at":"`...)
	dst = appendMillis(dst, e.OccurredAt)
	dst = append(dst, `","received_at":"`...)
	dst = appendMillis(dst, receivedAt)
	dst = append(dst, `","user_id":`...)
	dst = phpjson.AppendString(dst, e.UserID)
	dst = append(dst, `,"session_id":`...)
	dst = appendOptString(dst, e.SessionID)
	dst = append(dst, `,"country":`...)
	dst = phpjson.AppendString(dst, e.Country)
	dst = append(dst, `,"currency":`...)
	dst = appendOptString(dst, e.Currency)
	dst = append(dst, `,"amount":`...)
	if e.Currency == "" {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = appendMinor(dst, e.Amount, e.MinorUnits)
		dst = append(dst, '"')
	}
	dst = append(dst, `,"items":`...)
	if e.Items == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for i, it := range e.Items {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"sku":`...)
			dst = phpjson.AppendString(dst, it.SKU)
			dst = append(dst, `,"qty":`...)
			dst = strconv.AppendInt(dst, it.Qty, 10)
			dst = append(dst, `,"price":"`...)
			dst = appendMinor(dst, it.Price, e.MinorUnits)
			dst = append(dst, `"}`...)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"original_event_id":`...)
	dst = appendOptString(dst, e.OriginalEventID)
	dst = append(dst, `,"campaign_id":`...)
	dst = appendOptString(dst, e.CampaignID)
	dst = append(dst, `,"advertiser_id":`...)
	dst = appendOptString(dst, e.AdvertiserID)
	dst = append(dst, `,"email_sha256":`...)
	dst = appendOptString(dst, e.EmailSHA256)
	dst = append(dst, `,"metadata":{`...)
	for i, m := range e.Metadata {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = phpjson.AppendString(dst, m.Key)
		dst = append(dst, ':')
		dst = phpjson.AppendString(dst, m.Value)
	}
	return append(dst, "}}"...)
}

func appendOptString(dst []byte, s string) []byte {
	if s == "" {
		return append(dst, "null"...)
	}
	return phpjson.AppendString(dst, s)
}

// appendMinor appends v minor units as a decimal with exactly minor
// fraction digits: 1250 with 2 is "12.50", 1500 with 0 is "1500".
func appendMinor(dst []byte, v int64, minor int) []byte {
	scale := pow10(minor)
	dst = strconv.AppendInt(dst, v/scale, 10)
	if minor == 0 {
		return dst
	}
	var frac [milliDigits]byte
	for i, f := minor-1, v%scale; i >= 0; i, f = i-1, f/10 {
		frac[i] = byte('0' + f%10)
	}
	dst = append(dst, '.')
	return append(dst, frac[:minor]...)
}
