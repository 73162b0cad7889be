package engine

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// closeReason says why a connection ended; it decides whether the will is
// published and what a 5.0 client is told.
type closeReason uint8

const (
	endIOError      closeReason = iota // socket error or EOF without DISCONNECT: will published
	endDisconnect                      // client sent DISCONNECT: will discarded
	endKeepAlive                       // 1.5 × keep alive without a packet: will published
	endProtocol                        // protocol violation: will published
	endTakeover                        // a new connection took the client id: will published
	endShutdown                        // broker shutting down: will stays armed
	endStoreFailure                    // the store could not make a commit durable
	endStoreFull                       // 3.x PUBLISH refused: free space below the store's reserve (storefull.go)
	endQueueFull                       // 3.x PUBLISH refused: a subscriber's queue is full (queuelimit.go)
	endRetainedFull                    // PUBLISH refused: the retained messages are at their limit (retainlimit.go)
)

// conn is one network connection. Its reader goroutine (run) decodes packets
// and feeds the pipeline; its writer goroutine (writeLoop) is the only one
// that writes to the socket.
type conn struct {
	b   *Broker
	nc  net.Conn
	r   *wire.Reader
	log *slog.Logger

	version wire.Version
	// bridge: the CONNECT had the bridge bit in its 3.x protocol level
	// (wire.Connect.Bridge); its subscriptions are No Local and Retain As
	// Published, so a two-way bridge gets no echo of its own messages.
	bridge    bool
	isV5      atomic.Bool // version == V5, readable by Shutdown while CONNECT is handled
	clientID  string
	sess      *Session
	keepAlive time.Duration
	maxOut    uint32 // the client's Maximum Packet Size (5.0), 0 = none
	v5        v5state
	pl        *pipeline
	// batch is what the reader gathered from its read buffer, not yet
	// committed (batch.go).
	batch commitBatch
	sec   connSecurity // listener, user, limits (limits.go, authz.go)
	tally tally        // bytes and packets counted (counters.go)

	wmu     sync.Mutex
	ctl     []ctlItem // packets queued for the writer (acks, SUBACK, ...)
	started bool      // CONNECT handled: a writer may run (writer.go)
	resumed bool      // CONNECT resumed a session (it may have deliveries at once)
	// The reader's read deadline (refreshReadDeadline).
	deadlineSet time.Time
	deadlineOff bool
	// The writer (writer.go): running, asked to look again, stopped for
	// good; spare is its spare control list.
	writing, rewake, writerStop bool
	writers                     sync.WaitGroup
	spare                       []ctlItem

	closeOnce sync.Once
	sentFinal atomic.Bool   // a DISCONNECT or refusing CONNACK went out: the close lingers (linger.go)
	done      chan struct{} // closed when the connection is ending
	why       closeReason
	pub       wire.Publish            // the writer's scratch PUBLISH (appendAction)
	crowded   atomic.Pointer[Session] // a subscriber this reader fed is behind (backpressure.go)
	idle      idleState               // the reader's (idle.go)
	finished  chan struct{}           // closed after teardown (session detached)
}

func newConn(b *Broker, nc net.Conn) *conn {
	c := &conn{
		b:        b,
		nc:       nc,
		log:      connLogger(b.log, nc.RemoteAddr()), // connlog.go
		pl:       newPipeline(b.opts.MaxPipeline, b.opts.Limits.MaxInboundBytes),
		done:     make(chan struct{}),
		finished: make(chan struct{}),
		idle:     idleState{quiet: true}, // after CONNECT, most clients wait
	}
	c.pl.onWait = c.flushBatch // never wait for room holding a batch (batch.go)
	c.tally.init(nc, &b.stats.Traffic, b.opts.Observer != nil)
	c.r = wire.NewReader(&c.tally, b.opts.MaxPacketSize)
	return c
}

// run is the connection's first goroutine: it handles CONNECT, then hands
// the connection to a new reader goroutine (serve). The hop is for idle
// connections: CONNECT handling (the store commit of the session) grows a
// goroutine's stack to several KiB, and the reader of an idle connection
// would keep that stack; a fresh goroutine parked in its first read needs
// far less.
func (c *conn) run() {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.b.opts.ConnectTimeout))
	if !c.handshake() || !c.connect() {
		c.tally.flushRx()
		c.closeWith(endIOError) // c.why, read by closeSocket, is set under closeOnce: a Shutdown may race
		c.closeSocket()         // lingers after a refusing CONNACK (linger.go)
		close(c.finished)
		c.b.forgetConn(c)
		return
	}
	c.writeConnack()
	go c.serve()
}

// writeConnack starts the writer after CONNECT. The CONNACK goes out from
// this goroutine, whose stack CONNECT handling has grown already: a writer
// goroutine started just for it would grow a stack of its own (profiled, a
// tenth of the broker's CPU in a connect storm). A new session has nothing
// else to send; a resumed one, or anything queued meanwhile, gets the
// writer goroutine as before.
func (c *conn) writeConnack() {
	c.wmu.Lock()
	c.started = true
	inline := !c.writing && !c.writerStop
	if inline {
		c.writing = true // this goroutine is the writer until it says otherwise
		c.writers.Add(1)
	}
	c.wmu.Unlock()
	if !inline {
		c.wake()
		return
	}
	bp := writeBufs.Get().(*[]byte)
	buf, spare, _ := c.fill((*bp)[:0], c.spare, false)
	c.spare = spare
	var err error
	if len(buf) > 0 {
		err = c.write(buf, c.b.opts.WriteTimeout)
	}
	*bp = buf[:0]
	writeBufs.Put(bp)
	c.wmu.Lock()
	more := c.rewake || c.resumed
	c.writing, c.rewake = false, false
	c.wmu.Unlock()
	c.writers.Done()
	if err != nil {
		c.log.Info("write failed; closing connection", "err", err)
		c.closeWith(endIOError)
		return
	}
	if more {
		c.wake()
	}
}

// connect reads and handles CONNECT; false ends the connection.
func (c *conn) connect() bool {
	pkt, err := c.r.ReadPacket(0)
	if err != nil {
		c.refuseBadConnect(err)
		return false
	}
	c.tally.received(pkt.Type())
	cp, ok := pkt.(*wire.Connect)
	if !ok {
		c.b.stats.ProtocolErrors.Add(1)
		c.log.Warn("closing connection: first packet is not CONNECT", "packet", pkt.Type())
		return false
	}
	return c.handleConnect(cp)
}

// serve is the connection's reader goroutine after CONNECT.
func (c *conn) serve() {
	defer c.b.forgetConn(c)
	defer close(c.finished)
	defer c.tally.flushRx()
	c.readLoop()
	c.teardown()
}

// refuseBadConnect answers a CONNECT that could not be decoded.
func (c *conn) refuseBadConnect(err error) {
	we := wire.AsError(err)
	switch {
	case we != nil && we.Code == wire.UnsupportedProtocolVersion:
		// 3.1.1 §3.2.2.3: answer 0x01 and close. A 5.0 server answers 0x84,
		// but a client speaking an unknown level cannot be assumed to parse
		// 5.0: 0x01 in the 3.1.1 layout is what every version understands.
		c.b.stats.ProtocolErrors.Add(1)
		c.log.Warn("refusing connection: unsupported protocol version", "answer", "CONNACK 0x01 (3.1.1 layout)", "err", err)
		c.writeNow(&wire.Connack{ReasonCode: wire.ConnRefusedProtocolVersion}, wire.V311)
	case we != nil:
		c.b.stats.ProtocolErrors.Add(1)
		c.countWireError(we)
		if we.Version != wire.V5 || !wire.ValidReasonCode(wire.CONNACK, we.Code, wire.V5) {
			c.log.Warn("closing connection: malformed CONNECT", "err", err)
			return
		}
		// A 5.0 client is told why (§4.13.1: in the case of an error in a
		// CONNECT the server MAY send CONNACK with the reason code before
		// closing): 0x81, 0x82, 0x95 and the rest, with the decoder's message
		// as the Reason String. 3.x has no codes for these: it is closed.
		c.log.Warn("refusing connection: bad CONNECT", "err", err)
		c.version = wire.V5
		reason := strings.ToValidUTF8(we.Msg, "?") // an unencodable string would send nothing
		c.writeNow(&wire.Connack{ReasonCode: we.Code, Props: &wire.Properties{ReasonString: reason}}, wire.V5)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.b.stats.Security.ConnectTimeouts.Add(1)
		c.log.Info("closing connection: no CONNECT in time", "timeout", c.b.opts.ConnectTimeout)
	case errors.Is(err, io.EOF):
		c.log.Debug("connection closed before CONNECT")
	default:
		c.log.Info("closing connection before CONNECT", "err", err)
	}
}

// writeNow writes one packet synchronously; only before the writer starts.
func (c *conn) writeNow(p wire.Packet, v wire.Version) {
	buf, err := wire.AppendPacket(nil, p, v)
	if err != nil {
		c.log.Error("encoding packet", "packet", p.Type(), "err", err)
		return
	}
	if ack, ok := p.(*wire.Connack); ok && ack.ReasonCode != 0 {
		c.sentFinal.Store(true)
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	n, _ := c.nc.Write(buf)
	c.tally.sending(p.Type())
	c.tally.wrote(n)
}

// refreshReadDeadline keeps the read deadline 1.5 × keep alive ahead.
// Setting it is a timer update, so it is set before a read that may wait
// on the socket (the buffer is empty) and otherwise — packets still coming
// from the buffer, the client sent them just now — at most every quarter
// keep alive: the deadline is then never less than 1.25 × keep alive away.
// Without keep alive the connect timeout is cleared once.
func (c *conn) refreshReadDeadline() {
	if c.keepAlive <= 0 {
		if !c.deadlineOff {
			_ = c.nc.SetReadDeadline(time.Time{})
			c.deadlineOff = true
		}
		return
	}
	now := time.Now()
	if c.r.Buffered() == 0 || now.Sub(c.deadlineSet) >= c.keepAlive/4 {
		_ = c.nc.SetReadDeadline(now.Add(c.keepAlive * 3 / 2))
		c.deadlineSet = now
	}
}

// readLoop reads packets until the connection ends.
func (c *conn) readLoop() {
	for {
		if !c.waitWriter() {
			return
		}
		c.refreshReadDeadline()
		// closeWith closes done *before* it sets a past read deadline, so
		// checking done after setting ours means that either its deadline
		// overrides ours or we see done here: a busy reader (a client that
		// never stops sending) cannot keep a closing connection alive.
		select {
		case <-c.done:
			return
		default:
		}
		timed, err := c.readyToRead() // an idle connection holds no buffer (idle.go)
		if err != nil {
			c.readFailed(err)
			return
		}
		pkt, err := c.r.ReadPacket(c.version)
		if timed {
			c.readDone()
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		c.tally.received(pkt.Type())
		if !batched(pkt) {
			c.flushBatch() // commits stay in arrival order (batch.go)
		}
		if !c.handle(pkt) {
			return
		}
		if c.r.Buffered() == 0 {
			c.flushBatch() // the next read may block
		}
		c.waitForRoom() // a subscriber we feed is behind (backpressure.go)
	}
}

// batched reports whether pkt's handler stages its commit in the reader's
// batch (batch.go) instead of committing on its own.
func batched(pkt wire.Packet) bool {
	switch pkt.(type) {
	case *wire.Publish, *wire.Ack, *wire.Pingreq:
		return true
	}
	return false
}

// readFailed classifies the end of the read side.
func (c *conn) readFailed(err error) {
	select {
	case <-c.done:
		return // closed by us (take-over, shutdown): the reason is set
	default:
	}
	we := wire.AsError(err)
	switch {
	case we != nil:
		c.b.stats.ProtocolErrors.Add(1)
		c.countWireError(we)
		c.log.Warn("closing connection: bad packet", "err", err)
		c.disconnectWith(we.Code, we.Msg)
		c.closeWith(endProtocol)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.log.Info("closing connection: keep alive timeout", "keepalive", c.keepAlive)
		c.disconnectWith(wire.KeepAliveTimeout, "keep alive timeout")
		c.closeWith(endKeepAlive)
	case errors.Is(err, io.EOF):
		c.log.Debug("connection closed by client without DISCONNECT")
		c.closeWith(endIOError)
	default:
		c.log.Info("connection read failed", "err", err)
		c.closeWith(endIOError)
	}
}

// disconnectWith queues a 5.0 server DISCONNECT with a reason code and
// string (3.x has none: the connection is just closed).
func (c *conn) disconnectWith(code wire.ReasonCode, reason string) {
	if c.isV5.Load() {
		if !wire.ValidReasonCode(wire.DISCONNECT, code, wire.V5) {
			code = wire.UnspecifiedError // a decoder code DISCONNECT cannot carry (0x84, say)
		}
		d := &wire.Disconnect{ReasonCode: code}
		if reason != "" {
			d.Props = &wire.Properties{ReasonString: reason}
		}
		c.send(d)
		c.sentFinal.Store(true)
	}
}

// protocolError ends the connection for a protocol violation.
func (c *conn) protocolError(code wire.ReasonCode, msg string, args ...any) bool {
	c.b.stats.ProtocolErrors.Add(1)
	c.log.Warn("closing connection: "+msg, args...) // c.log names the client once CONNECT set it
	c.disconnectWith(code, msg)
	c.closeWith(endProtocol)
	return false
}

// handle dispatches one packet; false ends the connection.
func (c *conn) handle(pkt wire.Packet) bool {
	switch p := pkt.(type) {
	case *wire.Publish:
		return c.onPublish(p)
	case *wire.Ack:
		switch p.Kind {
		case wire.PUBREL:
			c.onPubrel(p)
		default:
			c.onDeliveryAck(p)
		}
		return true
	case *wire.Subscribe:
		c.onSubscribe(p)
		return true
	case *wire.Unsubscribe:
		c.onUnsubscribe(p)
		return true
	case *wire.Pingreq:
		c.send(&wire.Pingresp{})
		return true
	case *wire.Disconnect:
		c.onDisconnect(p)
		return false
	case *wire.Connect:
		return c.protocolError(wire.ProtocolError, "second CONNECT")
	case *wire.Auth:
		return c.onAuth(p)
	default:
		return c.protocolError(wire.ProtocolError, "packet not allowed from a client", "packet", pkt.Type())
	}
}

// onDisconnect handles the client's DISCONNECT. In 5.0 it may change the
// session expiry interval (not from 0: §3.14.2.2.2), and only reason 0x00
// discards the will: 0x04 asks for it, and so does any error code (the will
// is removed only after "a DISCONNECT with Reason Code 0x00", §3.1.2.5).
func (c *conn) onDisconnect(p *wire.Disconnect) {
	if c.version == wire.V5 && p.Props != nil && p.Props.SessionExpiry != nil {
		c.sess.mu.Lock()
		if c.sess.rec.ExpiryInterval == 0 && *p.Props.SessionExpiry != 0 {
			c.sess.mu.Unlock()
			c.protocolError(wire.ProtocolError, "DISCONNECT sets a session expiry on a session created with none")
			return
		}
		e := *p.Props.SessionExpiry
		if max := c.b.opts.Features.MaxSessionExpiry; max > 0 && e > max {
			e = max
		}
		c.sess.rec.ExpiryInterval = e
		c.sess.mu.Unlock()
	}
	if c.version == wire.V5 && p.ReasonCode != wire.Success {
		c.log.Debug("client disconnected with a reason code: will kept", "reason", p.ReasonCode)
		c.closeWith(endIOError)
		return
	}
	c.closeWith(endDisconnect)
}

// closeWith starts ending the connection (once): it unblocks the reader and
// tells the writer to flush what is queued and stop.
func (c *conn) closeWith(why closeReason) {
	c.closeOnce.Do(func() {
		c.why = why
		close(c.done)
		_ = c.nc.SetReadDeadline(time.Unix(1, 0))
		// A writer blocked on a half-open socket must not hold up a
		// take-over or a shutdown for the whole write timeout.
		_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	})
}

// takeover is called by a new connection with the same client id.
func (c *conn) takeover() {
	c.disconnectWith(wire.SessionTakenOver, "another connection took over the session")
	c.closeWith(endTakeover)
}

// shutdown is called by Broker.Shutdown.
func (c *conn) shutdown() {
	c.disconnectWith(wire.ServerShuttingDown, "server shutting down")
	c.closeWith(endShutdown)
}

// teardown runs on the reader goroutine after the read loop ends.
func (c *conn) teardown() {
	c.flushBatch()
	c.closeWith(endIOError)
	c.pl.close()
	c.stopWriter()
	linger := c.lingers()
	if !linger {
		c.nc.Close()
	}
	c.b.detach(c) // wills and take-overs do not wait for a linger
	if linger {
		c.linger()
		c.nc.Close()
	}
}

// failCommit ends the connection when the store could not commit what a
// packet needed: nothing is acknowledged.
func (c *conn) failCommit(err error) {
	c.log.Error("store commit failed; closing connection without acknowledging", "err", err)
	c.disconnectWith(wire.UnspecifiedError, "store failure")
	c.closeWith(endStoreFailure)
}
