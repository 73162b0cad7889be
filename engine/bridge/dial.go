package bridge

// Connecting both ends of a link: the remote broker (TCP or TLS, 3.1.1 or
// 5.0, clean session 0) and the bridge's internal session on the local
// broker (always 5.0, clean start 0, session expiry "never").
//
// Invariants:
//   - The remote is connected first: while it is unreachable the internal
//     session stays offline, so its queue grows on disk (the broker holds
//     nothing of an offline persistent session's backlog in memory) and the
//     session is not flapping online and offline with every retry.
//   - Each side is told the other side's limits before it sends anything:
//     the local CONNECT carries the remote's Receive Maximum and Maximum
//     Packet Size (so the local broker never sends more than the remote
//     takes), and a 5.0 remote gets the local ones (learned when the bridge
//     started, from the local CONNACK).
//   - A 3.1.1 CONNECT announces a bridge (protocol level 0x84) unless the
//     config says not to or this remote refused it once in this process.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

const (
	dialTimeout      = 10 * time.Second
	handshakeTimeout = 10 * time.Second
	remoteWriteLimit = 30 * time.Second
	localWriteLimit  = 30 * time.Second
	neverExpires     = 0xFFFFFFFF
	defaultRecvMax   = 65535
)

// caps are what one side accepts, from its CONNACK.
type caps struct {
	recvMax   int    // QoS 1/2 publishes it takes unacknowledged
	maxPacket uint32 // 0: no limit announced
	maxQoS    byte
	retain    bool
	keepAlive time.Duration // a 5.0 server's Server Keep Alive, else ours
	present   bool          // session present
}

func capsOf(a *wire.Connack, keepAlive time.Duration) caps {
	c := caps{recvMax: defaultRecvMax, maxQoS: 2, retain: true, keepAlive: keepAlive, present: a.SessionPresent}
	if p := a.Props; p != nil {
		if p.ReceiveMaximum != nil && *p.ReceiveMaximum > 0 {
			c.recvMax = int(*p.ReceiveMaximum)
		}
		if p.MaximumPacketSize != nil {
			c.maxPacket = *p.MaximumPacketSize
		}
		if p.MaximumQoS != nil {
			c.maxQoS = *p.MaximumQoS
		}
		if p.RetainAvailable != nil {
			c.retain = *p.RetainAvailable == 1
		}
		if p.ServerKeepAlive != nil {
			c.keepAlive = time.Duration(*p.ServerKeepAlive) * time.Second
		}
	}
	return c
}

// refusedError is a CONNACK that said no.
type refusedError struct {
	side string
	code wire.ReasonCode
	why  string
}

func (e *refusedError) Error() string {
	s := fmt.Sprintf("%s broker refused the connection: CONNACK 0x%02X", e.side, byte(e.code))
	if e.why != "" {
		s += " (" + e.why + ")"
	}
	return s
}

func reasonString(p *wire.Properties) string {
	if p == nil {
		return ""
	}
	return p.ReasonString
}

// dialRemote connects to the remote broker and completes CONNECT.
func (b *Bridge) dialRemote(ctx context.Context) (*mconn, caps, error) {
	for {
		private := b.cfg.Protocol == wire.V311 && b.cfg.tryPrivate() && !b.noPrivate.Load()
		m, c, err := b.dialRemoteOnce(ctx, private)
		if err != nil && private && ctx.Err() == nil && refusedLevel(err) {
			// Not every broker knows the bridge level (Cairn itself
			// does not); ask again as a plain 3.1.1 client.
			b.noPrivate.Store(true)
			b.log.Info("remote refused the bridge protocol level 0x84; connecting as a plain 3.1.1 client (messages of 'both' rules may come back once)",
				"err", err)
			continue
		}
		return m, c, err
	}
}

// refusedLevel reports whether err is how a broker refuses protocol level
// 0x84: CONNACK 0x01, or closing the connection.
func refusedLevel(err error) bool {
	var re *refusedError
	if errors.As(err, &re) {
		return re.code == wire.ConnRefusedProtocolVersion
	}
	return errors.Is(err, errConnackEOF)
}

var errConnackEOF = errors.New("connection closed before CONNACK")

func (b *Bridge) dialRemoteOnce(ctx context.Context, private bool) (*mconn, caps, error) {
	cfg := &b.cfg
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", cfg.Address)
	if err != nil {
		return nil, caps{}, fmt.Errorf("dialing %s: %w", cfg.Address, err)
	}
	if cfg.TLS != nil {
		host, _, _ := net.SplitHostPort(cfg.Address)
		tc, err := cfg.TLS.config(host)
		if err != nil {
			nc.Close()
			return nil, caps{}, err
		}
		conn := tls.Client(nc, tc)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err = conn.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, caps{}, fmt.Errorf("TLS handshake with %s: %w", cfg.Address, err)
		}
		nc = conn
	}
	// Stop the handshake if the bridge is stopped meanwhile.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	keep := cfg.KeepAlive
	c := &wire.Connect{
		Version:   cfg.Protocol,
		KeepAlive: uint16(keep / time.Second),
		ClientID:  cfg.ClientID,
	}
	if cfg.Username != "" {
		c.UsernameFlag, c.Username = true, cfg.Username
	}
	if cfg.Password != "" {
		c.PasswordFlag, c.Password = true, []byte(cfg.Password)
	}
	if cfg.Protocol == wire.V5 {
		exp := uint32(neverExpires)
		if cfg.SessionExpiry > 0 {
			exp = uint32(cfg.SessionExpiry / time.Second)
		}
		recv := uint16(min(cfg.Window, b.local.recvMax, 65535))
		c.Props = &wire.Properties{SessionExpiry: &exp, ReceiveMaximum: &recv}
		if mp := b.local.maxPacket; mp > 0 {
			// What the local broker would refuse, the remote should not
			// send: it drops it itself (MQTT 5.0 3.1.2.11.4).
			lim := mp - uint32(b.prefixGrowthIn())
			c.Props.MaximumPacketSize = &lim
		}
	}
	c.Bridge = private // protocol level 0x84
	m := newMconn("remote", nc, cfg.Protocol, 0, remoteWriteLimit)
	ack, err := m.handshake(c, handshakeTimeout)
	if err != nil {
		m.fail(err)
		if ctx.Err() != nil {
			return nil, caps{}, ctx.Err()
		}
		if errors.Is(err, net.ErrClosed) || isEOF(err) {
			return nil, caps{}, fmt.Errorf("%w: %w", errConnackEOF, err)
		}
		return nil, caps{}, err
	}
	if ack.ReasonCode != 0 {
		m.fail(errClosed)
		return nil, caps{}, &refusedError{side: "remote", code: ack.ReasonCode, why: reasonString(ack.Props)}
	}
	return m, capsOf(ack, keep), nil
}

func isEOF(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// dialLocal connects the bridge's internal session. recvMax and maxPacket
// are what the remote accepts (0: no limit).
func (b *Bridge) dialLocal(recvMax int, maxPacket uint32) (*mconn, caps, error) {
	nc, err := b.broker.DialInternal()
	if err != nil {
		return nil, caps{}, fmt.Errorf("local broker: %w", err)
	}
	exp := uint32(neverExpires)
	recv := uint16(max(1, min(recvMax, 65535)))
	c := &wire.Connect{
		Version:  wire.V5,
		ClientID: b.cfg.ClientIDLocal(),
		// Keep alive 0: the pipe cannot half-open; the broker's
		// shutdown closes it.
		Props: &wire.Properties{SessionExpiry: &exp, ReceiveMaximum: &recv},
	}
	if maxPacket > 0 {
		lim := maxPacket - uint32(b.prefixGrowthOut())
		c.Props.MaximumPacketSize = &lim
	}
	m := newMconn("local", nc, wire.V5, 0, localWriteLimit)
	ack, err := m.handshake(c, handshakeTimeout)
	if err != nil {
		m.fail(err)
		return nil, caps{}, err
	}
	if ack.ReasonCode != 0 {
		m.fail(errClosed)
		return nil, caps{}, &refusedError{side: "local", code: ack.ReasonCode, why: reasonString(ack.Props)}
	}
	return m, capsOf(ack, 0), nil
}

// prefixGrowthOut is how many bytes renaming can add to a local topic on
// its way out (so that a size limit leaves room for it); In likewise.
func (b *Bridge) prefixGrowthOut() int { return growth(b.cfg.Rules, Out) }
func (b *Bridge) prefixGrowthIn() int  { return growth(b.cfg.Rules, In) }

func growth(rules []Rule, d Direction) int {
	g := 0
	for _, r := range rules {
		if r.Direction&d == 0 {
			continue
		}
		n := len(r.RemotePrefix) - len(r.LocalPrefix)
		if d == In {
			n = -n
		}
		g = max(g, n)
	}
	return g
}
