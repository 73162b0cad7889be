package engine

import (
	"sync"
	"time"

	"github.com/cairn-mqtt/cairn/engine/session"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// The writer goroutine is the only writer of a connection's socket. It
// gathers everything that is ready — queued control packets first (CONNACK
// always precedes any PUBLISH), then deliveries as far as the in-flight window
// allows — encodes them into one buffer and writes it with a single system
// call. A persistent session whose backlog is on disk is read from the store
// here, a page at a time, so memory stays bounded however deep the queue is.

const (
	writeBatchBytes = 64 << 10
	storePageSize   = 256
)

// ctlItem is one queued control packet: p, or (p nil) the acknowledgement
// held by value — PUBACK, PUBREC and PUBCOMP go out once per message, and
// kept in the list they cost no allocation each.
type ctlItem struct {
	p   wire.Packet
	ack wire.Ack
}

// send queues a packet for the writer.
func (c *conn) send(p wire.Packet) {
	c.wmu.Lock()
	c.ctl = append(c.ctl, ctlItem{p: p})
	c.wmu.Unlock()
	c.wake()
}

// sendAck queues a PUBACK, PUBREC, PUBREL or PUBCOMP without properties.
func (c *conn) sendAck(kind wire.PacketType, pid uint16, code wire.ReasonCode) {
	c.wmu.Lock()
	c.ctl = append(c.ctl, ctlItem{ack: wire.Ack{Kind: kind, PacketID: pid, ReasonCode: code}})
	c.wmu.Unlock()
	c.wake()
}

// The writer runs only while there is something to write: wake starts it
// (or, if it is running, makes it look again before it stops), and it stops
// once a fill finds nothing. An idle connection has no writer goroutine and
// no write buffer (buffers come from writeBufs), which is most of what a
// connection would otherwise cost while idle.
//
// Invariants (under wmu): at most one writer runs (writing); work queued
// while it runs sets rewake, which it checks under the same lock before it
// stops, so no wake is lost; after teardown set writerStop none starts.

var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, writeBatchBytes); return &b }}

// wake makes sure a writer runs for what was just queued.
func (c *conn) wake() {
	c.wmu.Lock()
	switch {
	case c.writing:
		c.rewake = true
	case !c.started || c.writerStop:
	default:
		c.writing = true
		c.writers.Add(1)
		go c.writeRun()
	}
	c.wmu.Unlock()
}

// writeRun is the writer: fill, write, until there is nothing to write.
func (c *conn) writeRun() {
	defer c.writers.Done()
	bp := writeBufs.Get().(*[]byte)
	buf := (*bp)[:0]
	stopped := false
	defer func() {
		if !stopped { // an error ended it: let wake start another (teardown will not)
			c.wmu.Lock()
			c.writing = false
			c.wmu.Unlock()
		}
		if cap(buf) <= 2*writeBatchBytes {
			*bp = buf[:0]
			writeBufs.Put(bp)
		}
	}()
	for {
		select {
		case <-c.done:
			return // teardown writes what control packets are left
		default:
		}
		var ok bool
		buf, c.spare, ok = c.fill(buf[:0], c.spare, true)
		if !ok {
			return
		}
		if len(buf) == 0 {
			c.wmu.Lock()
			if c.rewake {
				c.rewake = false
				c.wmu.Unlock()
				continue
			}
			c.writing, stopped = false, true
			c.wmu.Unlock()
			return
		}
		if err := c.write(buf, c.b.opts.WriteTimeout); err != nil {
			c.log.Info("write failed; closing connection", "err", err)
			c.closeWith(endIOError)
			return
		}
	}
}

// stopWriter keeps any writer from starting again and waits for the one
// running, if any; then it writes what is queued (a final DISCONNECT, say)
// — the connection is closing, so deliveries stay queued for the session.
func (c *conn) stopWriter() {
	c.wmu.Lock()
	c.writerStop = true
	c.wmu.Unlock()
	c.writers.Wait()
	bp := writeBufs.Get().(*[]byte)
	buf, _, _ := c.fill((*bp)[:0], c.spare, false)
	if len(buf) > 0 {
		_ = c.write(buf, time.Second)
	}
	*bp = buf[:0]
	writeBufs.Put(bp)
}

func (c *conn) write(buf []byte, timeout time.Duration) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	n, err := c.nc.Write(buf)
	c.tally.wrote(n)
	return err
}

// fill appends the control packets and, if deliveries is set, the session's
// ready deliveries to buf. ok is false if the connection must close.
func (c *conn) fill(buf []byte, spare []ctlItem, deliveries bool) (_ []byte, _ []ctlItem, ok bool) {
	c.wmu.Lock()
	ctl := c.ctl
	c.ctl = spare[:0]
	c.wmu.Unlock()
	for i := range ctl {
		p := ctl[i].p
		if p == nil {
			p = &ctl[i].ack
		}
		ctl[i].p = nil
		if c.version == wire.V5 {
			if p = c.fitControl(p); p == nil { // the client's limits (outbound5.go)
				continue
			}
		}
		var err error
		if buf, err = wire.AppendPacket(buf, p, c.version); err != nil {
			c.log.Error("cannot encode packet; dropped", "packet", p.Type(), "err", err)
		} else {
			c.tally.sending(p.Type())
		}
	}
	spare = ctl
	if !deliveries {
		return buf, spare, true
	}
	s := c.sess
	for len(buf) < writeBatchBytes {
		s.mu.Lock()
		act, have := s.out.Next()
		if !have {
			from, to, need := s.out.NeedLoad()
			s.mu.Unlock()
			if !need {
				break
			}
			n := c.queuePage()
			page, err := c.b.store.ReadQueue(s.id, from, to, n)
			if err != nil {
				c.log.Error("reading the session queue failed; closing connection", "err", err)
				c.closeWith(endStoreFailure)
				return buf, spare, false
			}
			ds := make([]session.Delivery, len(page))
			for i, q := range page {
				ds[i] = deliveryOf(q)
			}
			s.mu.Lock()
			c.pageRead(page)
			s.out.Loaded(ds, to, len(page) < n)
			s.mu.Unlock()
			continue
		}
		s.drainedLocked() // wake paused publishers (backpressure.go)
		s.mu.Unlock()
		buf = c.appendAction(buf, act)
	}
	return buf, spare, true
}

// appendAction encodes one delivery action.
func (c *conn) appendAction(buf []byte, act session.Action) []byte {
	if act.Kind == session.SendPubrel {
		out, err := wire.AppendPacket(buf, &wire.Ack{Kind: wire.PUBREL, PacketID: act.PacketID}, c.version)
		if err != nil {
			c.log.Error("cannot encode PUBREL", "err", err)
			return buf
		}
		c.tally.sending(wire.PUBREL)
		return out
	}
	d := act.Delivery
	pub := &c.pub // the writer's own: no allocation per message
	*pub = wire.Publish{
		Dup:      act.Dup,
		QoS:      d.QoS,
		Retain:   d.Retain,
		Topic:    d.Msg.Topic,
		PacketID: act.PacketID,
		Payload:  d.Msg.Payload,
	}
	now := c.b.now()
	if expired(d.Msg, now) && !act.Dup {
		// Onward delivery has not started: the copy goes (MQTT-3.3.2-5).
		// A resend (DUP) has: an unacknowledged PUBLISH is resent whatever
		// its expiry (MQTT-4.4.0-1), with an interval of 0 left.
		c.dropDelivery(act, "message expired")
		return buf
	}
	alias := -1
	if c.version == wire.V5 {
		pub.Props = deliveryProps(d, now)
		alias = c.outAlias(pub)
		if alias >= 0 && c.maxOut > 0 && uint32(wire.Size(pub, c.version)) > c.maxOut {
			// Setting up an alias adds its property to the full topic:
			// without it the packet may fit.
			pub.Props.TopicAlias, alias = nil, -1
		}
		if c.maxOut > 0 && uint32(wire.Size(pub, c.version)) > c.maxOut {
			c.dropDelivery(act, "larger than the client's maximum packet size")
			return buf
		}
	}
	out, err := wire.AppendPacket(buf, pub, c.version)
	if err != nil {
		c.log.Error("cannot encode PUBLISH; dropped", "topic", d.Msg.Topic, "err", err)
		c.dropDelivery(act, "unencodable")
		return buf
	}
	if alias >= 0 {
		c.recordAlias(alias, d.Msg.Topic)
	}
	c.tally.sending(wire.PUBLISH)
	if d.QoS == 0 {
		c.b.stats.MessagesSent.Add(1)
	}
	return out
}

// dropDelivery gives up on a delivery the client cannot be sent: it leaves
// the in-flight window and, for a persistent session, the store — counted and
// logged, never silently.
func (c *conn) dropDelivery(act session.Action, why string) {
	b := c.b
	s := c.sess
	b.stats.drop(dropReasonOf(why), 1)
	c.log.Info("delivery dropped", "topic", act.Delivery.Msg.Topic, "qos", act.Delivery.QoS, "reason", why)
	if act.PacketID == 0 {
		return
	}
	s.mu.Lock()
	s.out.Forget(act.PacketID)
	s.mu.Unlock()
	if s.persistent {
		b.commit([]*store.Event{{Kind: store.EvDropped, Time: b.now().UnixNano(), Client: s.id, QSeq: act.Delivery.Seq, Reason: why}}, false, nil)
	}
}

// dropReasonOf maps dropDelivery's reasons to their counter.
func dropReasonOf(why string) DropReason {
	switch why {
	case "message expired":
		return DropExpired
	case "larger than the client's maximum packet size":
		return DropTooLarge
	}
	return DropUnencodable
}
