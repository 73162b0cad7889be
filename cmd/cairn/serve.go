package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

func serveFlags() []cli.Flag {
	d := engine.DefaultOptions()
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "YAML config file (keys are the flag names)", EnvVars: []string{"CAIRN_CONFIG"}},
		altsrc.NewStringFlag(&cli.StringFlag{Name: "listen", Value: "127.0.0.1:1883", Usage: "TCP listener address", EnvVars: []string{"CAIRN_LISTEN"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "data", Value: "./cairn-data", Usage: "store directory", EnvVars: []string{"CAIRN_DATA"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-inflight", Value: d.MaxInflight, Usage: "QoS 1/2 messages in flight toward each client", EnvVars: []string{"CAIRN_MAX_INFLIGHT"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-queued-memory", Value: d.MaxQueuedMemory, Usage: "QoS 1/2 messages held in memory per session (persistent sessions keep the rest on disk)", EnvVars: []string{"CAIRN_MAX_QUEUED_MEMORY"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-packet-size", Value: int(d.MaxPacketSize), Usage: "largest packet accepted, bytes", EnvVars: []string{"CAIRN_MAX_PACKET_SIZE"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "connect-timeout", Value: d.ConnectTimeout, Usage: "time a new connection has to send CONNECT", EnvVars: []string{"CAIRN_CONNECT_TIMEOUT"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "memtable-size", Value: 64, Usage: "Pebble memtable size, MiB", EnvVars: []string{"CAIRN_MEMTABLE_SIZE"}}),
	}
}

func serveCommand() *cli.Command {
	flags := serveFlags()
	return &cli.Command{
		Name:  "serve",
		Usage: "run the broker",
		Flags: flags,
		Before: func(c *cli.Context) error {
			if c.String("config") == "" {
				return nil
			}
			return altsrc.InitInputSourceWithContext(flags, altsrc.NewYamlSourceFromFlagFunc("config"))(c)
		},
		Action: serve,
	}
}

func serve(c *cli.Context) error {
	log, err := newLogger(c, os.Stderr)
	if err != nil {
		return err
	}
	dir := c.String("data")
	st, err := store.Open(dir, store.Options{Logger: log, MemTableSize: uint64(c.Int("memtable-size")) << 20})
	if err != nil {
		var ce *store.CorruptionError
		if errors.As(err, &ce) {
			return fmt.Errorf("the store in %s is damaged and was not opened (nothing was changed): %w\nrun `cairn recover --check --data %s` to see what is wrong", dir, err, dir)
		}
		return fmt.Errorf("opening the store in %s: %w", dir, err)
	}
	defer st.Close()
	b := engine.New(st, engine.Options{
		MaxInflight:     c.Int("max-inflight"),
		MaxQueuedMemory: c.Int("max-queued-memory"),
		MaxPacketSize:   uint32(c.Int("max-packet-size")),
		ConnectTimeout:  c.Duration("connect-timeout"),
		Logger:          log,
	})
	rep, err := recovery.Restore(st, b)
	if err != nil {
		return err
	}
	log.Info("store recovered", "dir", dir, "sessions", rep.Sessions, "subscriptions", rep.Subscriptions,
		"queued", rep.Queued, "retained", rep.Retained, "inbound_qos2", rep.InboundQoS2, "wills_published", rep.Wills, "took", rep.Took)

	l, err := net.Listen("tcp", c.String("listen"))
	if err != nil {
		return fmt.Errorf("listening on %s: %w", c.String("listen"), err)
	}
	log.Info("listening", "transport", "tcp", "addr", l.Addr().String(), "version", buildVersion())

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- b.Serve(l) }()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		if err != nil && !errors.Is(err, engine.ErrClosed) {
			log.Error("listener failed; shutting down", "err", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := b.Shutdown(sctx); err != nil {
		log.Error("shutdown did not finish", "err", err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("closing the store: %w", err)
	}
	log.Info("stopped")
	return nil
}
