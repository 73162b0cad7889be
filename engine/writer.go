package engine

import (
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

// send queues a packet for the writer.
func (c *conn) send(p wire.Packet) {
	c.wmu.Lock()
	c.ctl = append(c.ctl, p)
	c.wmu.Unlock()
	c.wake()
}

// wake tells the writer there may be something to write.
func (c *conn) wake() {
	select {
	case c.wakeCh <- struct{}{}:
	default:
	}
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	buf := make([]byte, 0, writeBatchBytes)
	var spare []wire.Packet
	for {
		select {
		case <-c.wakeCh:
		case <-c.done:
			c.flushControl(buf[:0], spare)
			return
		}
		for {
			var ok bool
			buf, spare, ok = c.fill(buf[:0], spare, true)
			if !ok {
				return
			}
			if len(buf) == 0 {
				break
			}
			if err := c.write(buf, c.b.opts.WriteTimeout); err != nil {
				c.log.Info("write failed; closing connection", "err", err)
				c.closeWith(endIOError)
				return
			}
		}
	}
}

// flushControl writes what is queued (a final DISCONNECT, say) when the
// connection is closing; deliveries stay queued for the session.
func (c *conn) flushControl(buf []byte, spare []wire.Packet) {
	buf, _, _ = c.fill(buf, spare, false)
	if len(buf) > 0 {
		_ = c.write(buf, time.Second)
	}
}

func (c *conn) write(buf []byte, timeout time.Duration) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	n, err := c.nc.Write(buf)
	c.tally.wrote(n)
	return err
}

// fill appends the control packets and, if deliveries is set, the session's
// ready deliveries to buf. ok is false if the connection must close.
func (c *conn) fill(buf []byte, spare []wire.Packet, deliveries bool) (_ []byte, _ []wire.Packet, ok bool) {
	c.wmu.Lock()
	ctl := c.ctl
	c.ctl = spare[:0]
	c.wmu.Unlock()
	for i, p := range ctl {
		ctl[i] = nil
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
	pub := wire.Publish{
		Dup:      act.Dup,
		QoS:      d.QoS,
		Retain:   d.Retain,
		Topic:    d.Msg.Topic,
		PacketID: act.PacketID,
		Payload:  d.Msg.Payload,
	}
	now := c.b.now()
	if expired(d.Msg, now) {
		c.dropDelivery(act, "message expired")
		return buf
	}
	alias := -1
	if c.version == wire.V5 {
		pub.Props = deliveryProps(d, now)
		alias = c.outAlias(&pub)
		if c.maxOut > 0 && uint32(wire.Size(&pub, c.version)) > c.maxOut {
			c.dropDelivery(act, "larger than the client's maximum packet size")
			return buf
		}
	}
	out, err := wire.AppendPacket(buf, &pub, c.version)
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
