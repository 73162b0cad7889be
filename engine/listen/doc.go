// Package listen holds the pieces of Cairn's listeners that know nothing of
// MQTT: a reloadable server TLS configuration (minimum TLS 1.2, optional
// client certificates), the identity a verified client certificate stands
// for, a connection limiter (ConnLimiter) bounding open connections in
// total and per source address over any number of listeners, and the
// WebSocket transport (ws.go): MQTT over WebSocket as a net.Listener whose
// connections are byte streams, so the broker serves them like TCP.
//
// A TLS listener with limits is assembled as
//
//	t, err := listen.NewTLS(listen.TLSOptions{CertFile: c, KeyFile: k, ClientCAFile: ca})
//	tcp, err := net.Listen("tcp", addr)
//	lim := listen.NewConnLimiter(maxConns, maxConnsPerIP) // shared by all listeners
//	limited := lim.Wrap(tcp)
//	l := tls.NewListener(limited, t.Config())
//
// and t.Reload() on SIGHUP swaps in renewed certificates without touching
// established connections.
package listen
