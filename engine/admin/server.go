package admin

// The admin HTTP server.
//
// Invariants:
//   - /healthz answers 200 as soon as the server runs (the process is up);
//     /readyz answers 503 until SetReady(true) — the broker calls it once
//     recovery is done and the MQTT listener accepts — and 200 after.
//   - Every handler's context ends when Shutdown begins, so a long stream
//     (events --follow) stops instead of holding Shutdown up.
//   - Endpoints are registered with Handle before or after Serve starts;
//     http.ServeMux is safe for that.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/store"
)

// Options configure New.
type Options struct {
	Store *store.Store
	// Broker, if set, adds the broker's clean sessions (never stored) to
	// the session rows.
	Broker *engine.Broker
	Logger *slog.Logger
}

// Server is the admin endpoint.
type Server struct {
	opts   Options
	log    *slog.Logger
	mux    *http.ServeMux
	srv    *http.Server
	ready  atomic.Bool
	ctx    context.Context
	cancel context.CancelFunc
}

// New returns a server with the health, readiness, inspect and backup
// endpoints registered.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{opts: opts, log: opts.Logger.With("component", "admin"), mux: http.NewServeMux(), ctx: ctx, cancel: cancel}
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "recovering", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	s.registerInspect()
	s.registerBackup()
	return s
}

// Handle registers h for pattern (http.ServeMux syntax, e.g. "GET
// /metrics").
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc registers fn for pattern.
func (s *Server) HandleFunc(pattern string, fn func(http.ResponseWriter, *http.Request)) {
	s.mux.HandleFunc(pattern, fn)
}

// SetReady sets what /readyz answers.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Serve answers on l until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("admin: serve on %s: %w", l.Addr(), err)
}

// Shutdown ends every handler's context and waits for them, until ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("admin: shutdown: %w", err)
	}
	return nil
}

// contentNDJSON is the content type of the JSON-lines answers.
const contentNDJSON = "application/x-ndjson"

// writeError answers an error as one JSON line {"error": "..."} with a
// status derived from err.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	var bad badRequest
	switch {
	case errors.As(err, &bad):
		status = http.StatusBadRequest
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, store.ErrClosed):
		status = http.StatusServiceUnavailable
	}
	if status == http.StatusInternalServerError {
		s.log.Warn("admin request failed", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", contentNDJSON)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(ErrorLine{Error: err.Error()})
}

// ErrorLine is the line an endpoint answers (or ends a stream with) when it
// fails.
type ErrorLine struct {
	Error string `json:"error"`
}

// badRequest marks an error in the request's parameters.
type badRequest struct{ err error }

func (b badRequest) Error() string { return b.err.Error() }
func (b badRequest) Unwrap() error { return b.err }

func badf(format string, args ...any) error { return badRequest{fmt.Errorf(format, args...)} }
