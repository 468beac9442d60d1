// Package campaigngen generates the deterministic campaign data set shipped as
// examples/monolith/data/campaigns.json. cmd/gencampaigns writes it; tests and
// benchmarks use it to build large documents without reading the file.
package campaigngen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

// Seed is the PCG seed of the shipped file. Changing it (or anything below)
// changes the file; regenerate with `go run ./cmd/gencampaigns`.
const (
	Seed1 = 20250101
	Seed2 = 42
)

// Count is the number of campaigns in the shipped file.
const Count = 10000

// Countries are the ISO 3166-1 alpha-2 codes campaigns target.
var countries = [...]string{
	"AE", "AR", "AT", "AU", "BE", "BR", "CA", "CH", "CZ", "DE",
	"DK", "ES", "FI", "FR", "GB", "IE", "IN", "IT", "JP", "KR",
	"MX", "NL", "NO", "NZ", "PL", "PT", "SE", "SG", "US", "ZA",
}

// Countries returns the country codes the generator draws from, sorted.
func Countries() []string { return slices.Clone(countries[:]) }

var currencies = [...]string{"EUR", "USD", "GBP", "JPY", "SEK", "CHF", "CAD", "AUD", "BRL", "INR"}

// Names mix ASCII, accented letters, CJK and characters JSON encoders treat
// differently (&, <, ', /, ") so the PHP/Go byte parity covers them.
var adjectives = [...]string{
	"Spring", "Summer", "Autumn", "Winter", "Flash", "Mega", "Loyalty", "Launch",
	"Holiday", "Back-to-School", "Crème", "Été", "Weekend", "Night/Day", "Brand",
	"Café", "Größte", "Fish & Chips", "Don't Miss", "Black Friday",
}

var nouns = [...]string{
	"Sale", "Promo", "Push", "Blitz", "Deals", "Retargeting", "Awareness",
	"Offer", "Bundle", "Drop", "夏祭り", "Angebote", "Soldes", "<Beta>", `"Quoted"`,
}

var (
	epoch       = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	windowStart = epoch
	windowEnd   = time.Date(2027, 12, 31, 0, 0, 0, 0, time.UTC)
)

// Generate returns n campaigns drawn from a PCG seeded with (seed1, seed2).
// The first four campaigns are fixtures other tests rely on (see CONTRACT.md):
// cmp_000001 active 2025-01-01..2028-01-01 in DE, FR, GB, US;
// cmp_000002 paused; cmp_000003 ended; cmp_000004 active from 2027-07-01.
func Generate(n int, seed1, seed2 uint64) *campaign.File {
	r := rand.New(rand.NewPCG(seed1, seed2))
	f := &campaign.File{Version: 1, GeneratedAt: epoch, Campaigns: make([]campaign.Campaign, n)}
	for i := range f.Campaigns {
		f.Campaigns[i] = one(r, i+1)
	}
	fixtures(f.Campaigns)
	return f
}

func one(r *rand.Rand, seq int) campaign.Campaign {
	c := campaign.Campaign{
		ID:           fmt.Sprintf("cmp_%06d", seq),
		AdvertiserID: fmt.Sprintf("adv_%04d", 1+r.IntN(750)),
		Name:         fmt.Sprintf("%s %s %d", adjectives[r.IntN(len(adjectives))], nouns[r.IntN(len(nouns))], seq),
	}
	switch p := r.IntN(100); {
	case p < 80:
		c.Status = "active"
	case p < 92:
		c.Status = "paused"
	default:
		c.Status = "ended"
	}
	// 1..6 distinct countries, sorted.
	k := 1 + r.IntN(6)
	perm := r.Perm(len(countries))[:k]
	c.Countries = make([]string, k)
	for j, p := range perm {
		c.Countries[j] = countries[p]
	}
	slices.Sort(c.Countries)
	// Start on a whole hour anywhere in 2025..2027, run 1..365 days, end no
	// later than windowEnd: "active now" then has both answers for any now in
	// those years.
	span := int64(windowEnd.Sub(windowStart) / time.Hour)
	c.StartsAt = windowStart.Add(time.Duration(r.Int64N(span-24)) * time.Hour)
	c.EndsAt = c.StartsAt.Add(time.Duration(24*(1+r.IntN(365))) * time.Hour)
	if c.EndsAt.After(windowEnd) {
		c.EndsAt = windowEnd
	}
	c.Budget.Currency = currencies[r.IntN(len(currencies))]
	c.Budget.AmountMinor = 1000 * (1 + r.Int64N(5_000_000))
	return c
}

func fixtures(cs []campaign.Campaign) {
	set := func(i int, status string, from, to time.Time, cc ...string) {
		if i >= len(cs) {
			return
		}
		cs[i].Status, cs[i].StartsAt, cs[i].EndsAt, cs[i].Countries = status, from, to, cc
	}
	d := func(y int, m time.Month, day int) time.Time { return time.Date(y, m, day, 0, 0, 0, 0, time.UTC) }
	set(0, "active", d(2025, 1, 1), d(2028, 1, 1), "DE", "FR", "GB", "US")
	set(1, "paused", d(2025, 1, 1), d(2028, 1, 1), "DE", "FR", "GB", "US")
	set(2, "ended", d(2025, 1, 1), d(2025, 6, 1), "DE", "FR", "GB", "US")
	set(3, "active", d(2027, 7, 1), d(2027, 12, 31), "DE", "FR", "GB", "US")
}

// Encode writes f as compact JSON with one campaign per line, so diffs of the
// shipped file stay readable. The bytes are those of encoding/json with HTML
// escaping off (a test holds them equal); it is written by hand because
// benchmarks and tests encode 100,000 campaigns, often under -race.
func Encode(w io.Writer, f *campaign.File) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	b := make([]byte, 0, 1024)
	b = append(b, `{"version":`...)
	b = strconv.AppendInt(b, int64(f.Version), 10)
	b = append(b, `,"generated_at":`...)
	b = appendTime(b, f.GeneratedAt)
	b = append(b, `,"campaigns":[`...)
	for i := range f.Campaigns {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '\n')
		b = appendCampaign(b, &f.Campaigns[i])
		if _, err := bw.Write(b); err != nil {
			return fmt.Errorf("write campaigns: %w", err)
		}
		b = b[:0]
	}
	b = append(b, "\n]}\n"...)
	bw.Write(b)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write campaigns: %w", err)
	}
	return nil
}

func appendCampaign(b []byte, c *campaign.Campaign) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"advertiser_id":`...)
	b = appendString(b, c.AdvertiserID)
	b = append(b, `,"name":`...)
	b = appendString(b, c.Name)
	b = append(b, `,"status":`...)
	b = appendString(b, c.Status)
	b = append(b, `,"countries":`...)
	if c.Countries == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, cc := range c.Countries {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, cc)
		}
		b = append(b, ']')
	}
	b = append(b, `,"starts_at":`...)
	b = appendTime(b, c.StartsAt)
	b = append(b, `,"ends_at":`...)
	b = appendTime(b, c.EndsAt)
	b = append(b, `,"budget":{"amount_minor":`...)
	b = strconv.AppendInt(b, c.Budget.AmountMinor, 10)
	b = append(b, `,"currency":`...)
	b = appendString(b, c.Budget.Currency)
	return append(b, "}}"...)
}

// appendTime is time.Time's MarshalJSON.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoding with SetEscapeHTML(false).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
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
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
