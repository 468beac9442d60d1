package campaigns

import (
	"encoding/base64"
	"strconv"
	"time"

	"github.com/strangler-proxy/strangler/ported/campaign"
	"github.com/strangler-proxy/strangler/ported/phpjson"
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
	b = phpjson.AppendString(b, c.ID)
	b = append(b, `,"advertiser_id":`...)
	b = phpjson.AppendString(b, c.AdvertiserID)
	b = append(b, `,"name":`...)
	b = phpjson.AppendString(b, c.Name)
	b = append(b, `,"status":`...)
	b = phpjson.AppendString(b, c.Status)
	b = append(b, `,"countries":[`...)
	for i, cc := range c.Countries {
		if i > 0 {
			b = append(b, ',')
		}
		b = phpjson.AppendString(b, cc)
	}
	b = append(b, `],"starts_at":"`...)
	b = appendTime(b, c.StartsAt)
	b = append(b, `","ends_at":"`...)
	b = appendTime(b, c.EndsAt)
	b = append(b, `","budget":{"amount_minor":`...)
	b = strconv.AppendInt(b, c.Budget.AmountMinor, 10)
	b = append(b, `,"currency":`...)
	b = phpjson.AppendString(b, c.Budget.Currency)
	b = append(b, `},"active":`...)
	b = strconv.AppendBool(b, c.ActiveAt(now))
	return append(b, '}')
}

// appendError appends {"error":…,"message":…[,"field":…][,"request_id":…]}.
func appendError(b []byte, code, message, field, requestID string) []byte {
	b = append(b, `{"error":`...)
	b = phpjson.AppendString(b, code)
	b = append(b, `,"message":`...)
	b = phpjson.AppendString(b, message)
	if field != "" {
		b = append(b, `,"field":`...)
		b = phpjson.AppendString(b, field)
	}
	if requestID != "" {
		b = append(b, `,"request_id":`...)
		b = phpjson.AppendString(b, requestID)
	}
	return append(b, '}')
}

// appendCursor appends the opaque cursor for "after id".
func appendCursor(b []byte, id string) []byte {
	return base64.RawURLEncoding.AppendEncode(b, []byte(id))
}
