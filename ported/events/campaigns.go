package events

import (
	"fmt"
	"os"

	"github.com/strangler-proxy/strangler/ported/campaign"
)

// FileCampaigns loads a campaigns.json document once into an immutable
// campaign.Set: the Lookup the parity tests and a hot-cache-less setup use.
// The hot cache (ported/hotcache) replaces it in production behind the same
// campaign.Lookup interface.
func FileCampaigns(path string) (*campaign.Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("campaigns: %w", err)
	}
	defer f.Close()
	doc, err := campaign.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("campaigns %s: %w", path, err)
	}
	set, err := campaign.NewSet(doc)
	if err != nil {
		return nil, fmt.Errorf("campaigns %s: %w", path, err)
	}
	return set, nil
}
