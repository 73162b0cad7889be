package engine

import (
	"bytes"
	"log/slog"
	"net"
	"testing"
)

func TestConnLoggerFormatsLikeWith(t *testing.T) {
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 4242}
	for _, mk := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var a, b bytes.Buffer
		want := slog.New(mk(&a)).With("remote", addr.String()).With("client", "c1")
		got := connLogger(slog.New(mk(&b)), addr).With("client", "c1")
		want.Info("hello", "err", "boom")
		got.Info("hello", "err", "boom")
		// Drop the time, which differs.
		strip := func(s string) string { return s[bytes.IndexByte([]byte(s), 'l'):] }
		if strip(a.String()) != strip(b.String()) {
			t.Fatalf("connLogger wrote\n%s\nslog With writes\n%s", b.String(), a.String())
		}
	}
}
