package main

// The admin endpoint of `cairn serve` (engine/admin): opened before
// recovery so that /healthz answers while a large store is loaded, ready
// once the MQTT listener accepts, closed after the broker has drained and
// before the store closes. While it runs, its address is written to
// <data>/cairn-admin.addr so that the tools can say where to reach it when
// they find the store locked.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/admin"
	"github.com/cairn-mqtt/cairn/store"
)

type adminEndpoint struct {
	srv      *admin.Server
	addr     string
	addrFile string
	log      *slog.Logger
	done     chan error
	stopped  bool
}

// startAdmin listens on addr and serves the admin endpoint; an empty addr
// disables it (nil endpoint, whose methods do nothing).
func startAdmin(addr, dataDir string, st *store.Store, b *engine.Broker, log *slog.Logger) (*adminEndpoint, error) {
	if addr == "" {
		log.Info("admin endpoint disabled")
		return nil, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin endpoint: listening on %s: %w", addr, err)
	}
	a := &adminEndpoint{
		srv:      admin.New(admin.Options{Store: st, Broker: b, Logger: log}),
		addr:     l.Addr().String(),
		addrFile: filepath.Join(dataDir, adminAddrFile),
		log:      log,
		done:     make(chan error, 1),
	}
	go func() { a.done <- a.srv.Serve(l) }()
	if err := os.WriteFile(a.addrFile, []byte(a.addr+"\n"), 0o644); err != nil {
		log.Warn("could not record the admin address in the data directory", "err", err)
	}
	log.Info("admin endpoint listening", "addr", a.addr)
	return a, nil
}

// handle registers another endpoint on the admin server (for example
// Prometheus metrics, or a compaction trigger); nothing when the endpoint
// is disabled.
func (a *adminEndpoint) handle(pattern string, h http.Handler) {
	if a != nil {
		a.srv.Handle(pattern, h)
	}
}

// setReady makes /readyz answer 200.
func (a *adminEndpoint) setReady() {
	if a != nil {
		a.srv.SetReady(true)
	}
}

// stop shuts the endpoint down (idempotent).
func (a *adminEndpoint) stop() {
	if a == nil || a.stopped {
		return
	}
	a.stopped = true
	a.srv.SetReady(false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.log.Warn("admin endpoint shutdown", "err", err)
	}
	if err := <-a.done; err != nil {
		a.log.Warn("admin endpoint", "err", err)
	}
	if err := os.Remove(a.addrFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		a.log.Warn("could not remove the admin address file", "err", err)
	}
}

// damagedStoreErr turns an error about the store's contents into the
// refusal `cairn serve` gives: never start without the data, say how to
// look at it.
func damagedStoreErr(dir string, err error) error {
	var ce *store.CorruptionError
	if !errors.As(err, &ce) && !errors.Is(err, store.ErrUndecodable) && !missingStoreFile(dir, err) {
		return nil
	}
	return fmt.Errorf("the store in %s is damaged and the broker will not start without its data (no data was changed): %w\n"+
		"run `cairn recover --check --data %s` to see what is wrong, then `cairn recover --repair --data %s` to mend it (it backs the store up first)", dir, err, dir, dir)
}
