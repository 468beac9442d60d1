package routes

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// ReloadCheck is what reloading some file contents would do, as DryRun finds
// it. Result is ResultOK when the watcher would hand the table to its
// Publisher (which builds the route runtimes and may still refuse, e.g. a
// capture file that will not open: ResultResourceError is only known
// then); otherwise Problems says why the reload would be refused. Changes
// lists what would change against the table in force, as the reload's log
// line would.
type ReloadCheck struct {
	Result   string   `json:"result"`
	Problems []string `json:"problems,omitempty"`
	Changes  []string `json:"changes"`
}

// DryRun checks data as a reload would — parse, the static sections
// against the file the process started with, decode, compile — and changes
// nothing. It is safe to call while Run runs.
func (w *Watcher) DryRun(data []byte) ReloadCheck {
	t, c, result, problems := w.check(data)
	if t == nil {
		return ReloadCheck{Result: result, Problems: problems, Changes: []string{}}
	}
	w.mu.Lock()
	changes := Changes(w.current, c)
	w.mu.Unlock()
	return ReloadCheck{Result: ResultOK, Changes: changes}
}

// maxCheckBytes bounds a config file sent to CheckHandler.
const maxCheckBytes = 4 << 20

// CheckHandler answers a POST whose body is a config file with the
// DryRun ReloadCheck as JSON (200 whatever the verdict; 413 past 4 MiB). It is
// what `strangler check -against` asks a running instance.
func (w *Watcher) CheckHandler() http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		data, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, maxCheckBytes))
		if err != nil {
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(rw, "{\"error\": %q}\n", fmt.Sprintf("read the config: %v", err))
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(rw)
		enc.SetIndent("", "  ")
		_ = enc.Encode(w.DryRun(data))
	})
}
