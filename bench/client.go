package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// The load generator's MQTT connection. One goroutine reads (start), and
// answers what it reads: PUBACK or PUBREC for a QoS 1/2 PUBLISH, PUBCOMP for
// a PUBREL, PUBREL for a PUBREC. Those answers, and the publishes of the
// connection's publisher, are appended to one pending buffer; it is written
// with one system call when the reader has consumed everything it read (acks
// are batched per read) and when the publisher would otherwise wait (its
// window is full, or it has nothing more to send right now).

// connOptions are a connection's CONNECT parameters.
type connOptions struct {
	ClientID  string
	Clean     bool
	KeepAlive uint16 // 0: no keepalive
	Version   wire.Version
	Username  string
	Password  string
	// Timeout bounds the dial and each synchronous exchange (CONNECT,
	// SUBSCRIBE).
	Timeout time.Duration
	// WriteTimeout bounds each write.
	WriteTimeout time.Duration
	// BufSize is the initial size of the read and write buffers (default
	// 64 KiB; they grow for a larger packet). Thousands of mostly idle
	// connections want less.
	BufSize int
}

// conn is one MQTT connection of the load generator.
type conn struct {
	nc             net.Conn
	v              wire.Version
	fr             *frameReader
	sessionPresent bool
	writeTimeout   time.Duration

	wmu     sync.Mutex
	pending []byte // appended to under wmu
	flushMu sync.Mutex
	spare   []byte // written under flushMu

	// Handlers, called on the reader goroutine; set them before subscribe
	// or start. The views alias the read buffer.
	onPublish func(p *publishView)
	onAck     func(kind wire.PacketType, pid uint16, code byte)
	// onPubrec and onPubrel, if set, see a successful PUBREC (before the
	// PUBREL answering it is queued) and a PUBREL (before the PUBCOMP).
	onPubrec func(pid uint16)
	onPubrel func(pid uint16)

	closing atomic.Bool
	running atomic.Bool
	done    chan struct{} // closed when the reader goroutine ends
	err     error         // why it ended (nil after close); read after done
	nextPID uint16        // for SUBSCRIBE/UNSUBSCRIBE
}

// errBrokerClosed is the broker ending the connection.
var errBrokerClosed = errors.New("the broker closed the connection")

// dial connects and completes the CONNECT/CONNACK exchange.
func dial(ctx context.Context, addr string, o connOptions) (*conn, error) {
	if o.Version == 0 {
		o.Version = wire.V311
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.BufSize <= 0 {
		o.BufSize = 64 << 10
	}
	d := net.Dialer{Timeout: o.Timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{
		nc:           nc,
		v:            o.Version,
		fr:           newFrameReader(nc, o.BufSize),
		writeTimeout: o.WriteTimeout,
		pending:      make([]byte, 0, o.BufSize),
		spare:        make([]byte, 0, o.BufSize),
		done:         make(chan struct{}),
	}
	c.fr.idle = c.flush
	cp := &wire.Connect{Version: o.Version, CleanStart: o.Clean, KeepAlive: o.KeepAlive, ClientID: o.ClientID}
	if o.Username != "" {
		cp.UsernameFlag, cp.Username = true, o.Username
	}
	if o.Password != "" {
		cp.PasswordFlag, cp.Password = true, []byte(o.Password)
	}
	if o.Version == wire.V5 && !o.Clean {
		// 5.0: a persistent session needs a session expiry interval.
		never := uint32(0xFFFFFFFF)
		cp.Props = &wire.Properties{SessionExpiry: &never}
	}
	_ = nc.SetDeadline(time.Now().Add(o.Timeout))
	if err := c.sendPacket(cp); err != nil {
		nc.Close()
		return nil, err
	}
	p, err := c.waitFor(wire.CONNACK)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	ack := p.(*wire.Connack)
	if ack.ReasonCode != 0 {
		nc.Close()
		return nil, fmt.Errorf("CONNACK refused the connection: reason code 0x%02X", byte(ack.ReasonCode))
	}
	c.sessionPresent = ack.SessionPresent
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// sendPacket encodes p with the wire codec, appends it and flushes.
func (c *conn) sendPacket(p wire.Packet) error {
	c.wmu.Lock()
	var err error
	c.pending, err = wire.AppendPacket(c.pending, p, c.v)
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	return c.flush()
}

// waitFor reads packets until one of type t arrives, handling everything
// else on the way. Only before start.
func (c *conn) waitFor(t wire.PacketType) (wire.Packet, error) {
	for {
		hdr, body, whole, err := c.fr.next()
		if err != nil {
			return nil, err
		}
		if wire.PacketType(hdr>>4) == t {
			return decodeWhole(whole, c.v)
		}
		if err := c.dispatch(hdr, body, whole); err != nil {
			return nil, err
		}
	}
}

// subscribe subscribes to filters at qos and waits for the SUBACK. Only
// before start.
func (c *conn) subscribe(filters []string, qos byte, timeout time.Duration) error {
	sub := &wire.Subscribe{PacketID: c.pid()}
	for _, f := range filters {
		sub.Subscriptions = append(sub.Subscriptions, wire.Subscription{Filter: f, QoS: qos})
	}
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	if err := c.sendPacket(sub); err != nil {
		return err
	}
	p, err := c.waitFor(wire.SUBACK)
	if err != nil {
		return fmt.Errorf("waiting for SUBACK: %w", err)
	}
	for i, rc := range p.(*wire.Suback).ReasonCodes {
		if rc >= 0x80 {
			return fmt.Errorf("SUBACK refused %q: reason code 0x%02X", filters[min(i, len(filters)-1)], byte(rc))
		}
	}
	return nil
}

func (c *conn) pid() uint16 {
	c.nextPID++
	if c.nextPID == 0 {
		c.nextPID = 1
	}
	return c.nextPID
}

// start runs the reader goroutine.
func (c *conn) start() {
	c.running.Store(true)
	go func() {
		defer close(c.done)
		for {
			hdr, body, whole, err := c.fr.next()
			if err == nil {
				err = c.dispatch(hdr, body, whole)
			}
			if err != nil {
				if !c.closing.Load() {
					c.err = err
				}
				return
			}
		}
	}()
}

// dispatch handles one packet from the broker.
func (c *conn) dispatch(hdr byte, body, whole []byte) error {
	switch wire.PacketType(hdr >> 4) {
	case wire.PUBLISH:
		p, err := parsePublish(hdr, body, c.v)
		if err != nil {
			return err
		}
		if c.onPublish != nil {
			c.onPublish(&p)
		}
		switch p.QoS {
		case 1:
			c.queueAck(wire.PUBACK, p.PID)
		case 2:
			c.queueAck(wire.PUBREC, p.PID)
		}
	case wire.PUBACK, wire.PUBCOMP:
		pid, code, err := parseAck(body)
		if err != nil {
			return err
		}
		if c.onAck != nil {
			c.onAck(wire.PacketType(hdr>>4), pid, code)
		}
	case wire.PUBREC:
		pid, code, err := parseAck(body)
		if err != nil {
			return err
		}
		if code >= 0x80 {
			// The flow ends here (5.0): report it as the final ack.
			if c.onAck != nil {
				c.onAck(wire.PUBREC, pid, code)
			}
			return nil
		}
		if c.onPubrec != nil {
			c.onPubrec(pid)
		}
		c.queueAck(wire.PUBREL, pid)
	case wire.PUBREL:
		pid, _, err := parseAck(body)
		if err != nil {
			return err
		}
		if c.onPubrel != nil {
			c.onPubrel(pid)
		}
		c.queueAck(wire.PUBCOMP, pid)
	case wire.PINGRESP, wire.SUBACK, wire.UNSUBACK:
	case wire.DISCONNECT:
		if p, err := decodeWhole(whole, c.v); err == nil {
			return fmt.Errorf("the broker sent DISCONNECT, reason code 0x%02X", byte(p.(*wire.Disconnect).ReasonCode))
		}
		return errBrokerClosed
	default:
		return fmt.Errorf("unexpected %v from the broker", wire.PacketType(hdr>>4))
	}
	return nil
}

func (c *conn) queueAck(kind wire.PacketType, pid uint16) {
	c.wmu.Lock()
	c.pending = appendAck(c.pending, kind, pid)
	c.wmu.Unlock()
}

// queuePublish appends a PUBLISH.
func (c *conn) queuePublish(topic string, qos byte, pid uint16, payload []byte) {
	c.wmu.Lock()
	c.pending = appendPublish(c.pending, c.v, topic, qos, pid, false, payload)
	c.wmu.Unlock()
}

// pendingLen is the number of bytes waiting to be written.
func (c *conn) pendingLen() int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.pending)
}

// flush writes everything pending with one system call.
func (c *conn) flush() error {
	c.flushMu.Lock()
	defer c.flushMu.Unlock()
	c.wmu.Lock()
	buf := c.pending
	c.pending = c.spare[:0]
	c.wmu.Unlock()
	c.spare = buf
	if len(buf) == 0 {
		return nil
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	_, err := c.nc.Write(buf)
	return err
}

// close sends DISCONNECT, closes the socket and waits for the reader.
func (c *conn) close() {
	if c.closing.Swap(true) {
		c.wait(0)
		return
	}
	_ = c.sendPacket(&wire.Disconnect{})
	// Wait (briefly) for the broker to close its side: by then it has
	// processed the DISCONNECT, so a new connection with the same client id
	// finds the session ended. The broker closing first also puts the
	// connection's TIME_WAIT on its side: a client that closes first keeps
	// one local port in TIME_WAIT for a minute per connection, and with tens
	// of thousands of them (a connect run purges and closes 10,000 sessions
	// twice) every later connect(2) of the load generator scans the
	// ephemeral port range for a free port, which made the connect storm
	// measure the kernel's port search more than the broker.
	if c.started() {
		c.wait(time.Second)
	} else {
		_ = c.nc.SetReadDeadline(time.Now().Add(time.Second))
		for {
			if _, _, _, err := c.fr.next(); err != nil {
				break
			}
		}
	}
	_ = c.nc.Close()
	c.wait(0)
}

// wait waits up to d (0: until done) for the reader, if it was started.
func (c *conn) wait(d time.Duration) {
	if !c.started() {
		return
	}
	if d == 0 {
		<-c.done
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
	}
}

func (c *conn) started() bool { return c.running.Load() }

// errOr returns why the reader ended (once done is closed), or def.
func (c *conn) errOr(def error) error {
	select {
	case <-c.done:
		if c.err != nil {
			return c.err
		}
	default:
	}
	return def
}
