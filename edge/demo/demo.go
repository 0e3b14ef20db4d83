// Package demo is the small upstream API that `latchkey dev` puts behind the edge, so a new
// user can see what an allowed request looks like from the upstream's side: the identity
// headers the edge injected, an SSE stream a browser opens with ?token=, and a steer call.
// It trusts those headers because only the edge can reach it; it checks nothing itself.
package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"
)

// IdentityPrefix is the prefix of the identity headers of the default policy.
const IdentityPrefix = "X-Latchkey-"

// Options configure the demo upstream.
type Options struct {
	// EventInterval is the time between two SSE events (default 1 s).
	EventInterval time.Duration
	// MaxEvents ends a stream after this many events (default 0: until the client leaves).
	MaxEvents int
}

// Handler returns the demo upstream.
func Handler(o Options) http.Handler {
	if o.EventInterval <= 0 {
		o.EventInterval = time.Second
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /sessions/{id}/events", func(w http.ResponseWriter, r *http.Request) {
		events(w, r, o)
	})
	mux.HandleFunc("POST /sessions/{id}/messages", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		writeJSON(w, http.StatusOK, map[string]any{
			"steered": r.PathValue("id"), "received": string(body), "identity": identity(r),
		})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{
			"upstream": "latchkey demo", "method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery,
			"identity": identity(r),
		})
	})
	return mux
}

// identity collects the identity headers the edge set.
func identity(r *http.Request) map[string]string {
	out := map[string]string{}
	for name, v := range r.Header {
		if strings.HasPrefix(name, IdentityPrefix) && len(v) > 0 {
			out[strings.ToLower(strings.TrimPrefix(name, IdentityPrefix))] = v[0]
		}
	}
	return out
}

func events(w http.ResponseWriter, r *http.Request, o Options) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	id := identity(r)
	keys := make([]string, 0, len(id))
	for k := range id {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t := time.NewTicker(o.EventInterval)
	defer t.Stop()
	for n := 1; o.MaxEvents == 0 || n <= o.MaxEvents; n++ {
		data, _ := json.Marshal(map[string]any{
			"n": n, "session": r.PathValue("id"), "at": time.Now().UTC().Format(time.RFC3339),
			"query_seen_by_upstream": r.URL.RawQuery, "identity": id,
		})
		fmt.Fprintf(w, "event: tick\nid: %d\ndata: %s\n\n", n, data)
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-t.C:
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
