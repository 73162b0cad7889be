package engine

import (
	"context"
	"log/slog"
	"net"
)

// A connection's logger carries its remote address and client id. slog's
// With would format them into a copy of the handler at once — a few
// hundred bytes for every connection, idle or not, although most never log
// a line. attrHandler keeps the attributes as they are and adds them (in
// front of the record's own) only to records that are actually written.

type attrHandler struct {
	inner slog.Handler
	attrs []slog.Attr
}

func (h *attrHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(h.attrs...)
	r.Attrs(func(a slog.Attr) bool { out.AddAttrs(a); return true })
	return h.inner.Handle(ctx, out)
}

func (h *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{inner: h.inner, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *attrHandler) WithGroup(name string) slog.Handler {
	return h.inner.WithAttrs(h.attrs).WithGroup(name)
}

// connLogger is the broker's logger with the connection's remote address,
// formatted only if a line is written.
func connLogger(base *slog.Logger, remote net.Addr) *slog.Logger {
	return slog.New(&attrHandler{inner: base.Handler(), attrs: []slog.Attr{slog.Any("remote", addrValue{remote})}})
}

// addrValue logs an address as its string, formatted when logged.
type addrValue struct{ a net.Addr }

func (v addrValue) LogValue() slog.Value { return slog.StringValue(v.a.String()) }
