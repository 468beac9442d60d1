package hotcache

import (
	"encoding/json"
	"net/http"
)

// RefreshHandler forces a refresh (POST only), for the admin listener at
// /admin/hotcache/refresh. It answers 200 with the result and the current
// snapshot, or 502 when the refresh failed (the previous snapshot stays).
func (c *Cache) RefreshHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"error": "method_not_allowed"})
			return
		}
		result, err := c.refresh(r.Context())
		snap := c.Snapshot()
		body := map[string]any{
			"result":  result,
			"entries": snap.Set().Len(),
			"etag":    snap.ETag(),
			"bytes":   snap.Bytes(),
		}
		if snap.Loaded() {
			body["loaded_at"] = snap.LoadedAt().UTC()
		}
		status := http.StatusOK
		if err != nil {
			status = http.StatusBadGateway
			body["error"] = err.Error()
		}
		writeJSON(w, status, body)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the admin client went away; nothing to do
}
