package main

// The admin endpoint's actions, beside its queries: POST /v1/compact runs a
// compaction pass now (what --compact-interval does on a timer), POST
// /v1/reload rereads the password, ACL and certificate files and the config
// file's bridges (what SIGHUP does). Both answer one JSON object; POST only,
// so that a browser or a crawler following links never triggers them.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
)

// compactResult is the answer of POST /v1/compact.
type compactResult struct {
	RetainedExpired int      `json:"retained_expired"`
	QueuedExpired   int      `json:"queued_expired"`
	BodiesCollected int      `json:"bodies_collected"`
	EventsTruncated uint64   `json:"events_truncated"`
	LogFirstSeq     uint64   `json:"log_first_seq"`
	Compactions     int      `json:"pebble_compactions"`
	TookMS          float64  `json:"took_ms"`
	MaxPauseMS      float64  `json:"max_pause_ms"`
	DiskBefore      uint64   `json:"disk_before"`
	DiskAfter       uint64   `json:"disk_after"`
	Error           string   `json:"error,omitempty"`
	Problems        []string `json:"problems,omitempty"`
}

func resultOf(r store.CompactReport) compactResult {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return compactResult{
		RetainedExpired: r.RetainedExpired, QueuedExpired: r.QueuedExpired, BodiesCollected: r.BodiesCollected,
		EventsTruncated: r.EventsTruncated, LogFirstSeq: r.LogFirstSeq, Compactions: r.Compactions,
		TookMS: ms(r.Took), MaxPauseMS: ms(r.MaxPause), DiskBefore: r.DiskBefore, DiskAfter: r.DiskAfter,
	}
}

// registerAdminActions adds the actions to a (possibly disabled) endpoint.
func registerAdminActions(a *adminEndpoint, b *engine.Broker) {
	a.handle("/v1/compact", postOnly(func(w http.ResponseWriter, r *http.Request) {
		rep, err := b.Compact(r.Context(), r.URL.Query().Get("full") == "true")
		res := resultOf(rep)
		code := http.StatusOK
		if err != nil {
			res.Error, code = err.Error(), http.StatusInternalServerError
		}
		writeJSON(w, code, res)
	}))
	a.handle("/v1/reload", postOnly(func(w http.ResponseWriter, r *http.Request) {
		if err := b.Reload(); err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]bool{"reloaded": true})
	}))
}

func postOnly(fn http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "POST only"})
			return
		}
		fn(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// post performs POST path on the admin endpoint and decodes its JSON answer
// into v; a non-200 answer with an "error" field becomes that error.
func (a *adminClient) post(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.base+path, nil)
	if err != nil {
		return err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin endpoint %s: %w (is the broker running with --admin %s?)", a.base, err, strings.TrimPrefix(a.base, "http://"))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("admin endpoint %s: %w", a.base, err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if resp.StatusCode != http.StatusOK {
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("admin endpoint %s: %s", a.base, e.Error)
		}
		return fmt.Errorf("admin endpoint %s: %s: %s", a.base, resp.Status, strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, v)
}
