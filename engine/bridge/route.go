package bridge

// The router of one link: what each packet from one side becomes on the
// other. The bridge keeps no message state of its own; the two MQTT
// sessions do, and the bridge passes each QoS exchange through with the
// SAME packet identifier on both sides:
//
//	out (local delivery X):   local PUBLISH X  → remote PUBLISH X
//	                          remote PUBACK X  → local PUBACK X
//	                          remote PUBREC X  → local PUBREC X
//	                          local PUBREL X   → remote PUBREL X
//	                          remote PUBCOMP X → local PUBCOMP X
//	in (remote delivery P):   the same with the sides swapped.
//
// Why this is durable: the local broker removes the message from the
// bridge's on-disk queue only when the bridge acknowledges it, and the
// bridge acknowledges only what the remote acknowledged, so at any crash
// the message is still in the queue (redelivered, DUP set) or already on
// the remote. Why it is exactly once for QoS 2: the identifier of a
// delivery follows from its queue position, so a redelivery after a
// crash reaches the remote with the identifier the remote still holds in
// its own QoS 2 state, and the remote discards the duplicate (and a PUBREL
// the local broker resends after a crash completes the remote's exchange).
// Identifiers cannot collide on the remote: the local broker reuses X only
// after its PUBCOMP, which the bridge sends only after the remote's.
//
// Invariants:
//   - Deliveries are forwarded in the order the local broker sends them
//     (one reader, one writer queue per side), at most Window in flight:
//     the local broker never has more unacknowledged deliveries than the
//     Receive Maximum of the local CONNECT.
//   - Inbound publishes never exceed the local broker's Receive Maximum:
//     a semaphore taken per QoS 1/2 PUBLISH blocks the remote reader (TCP
//     back-pressure for a 3.1.1 remote, which has no flow control) and is
//     released exactly when the local broker frees the slot (PUBACK,
//     error PUBREC, or our PUBREL).
//   - A message that cannot cross (no rule renames it, too large, refused
//     by the other side's maximum QoS 0) is answered on its own side,
//     counted as dropped and logged; "absorb" sets remember the QoS 2
//     exchanges the bridge then completes itself.
//   - Loops: the internal session's subscriptions have No Local, so what
//     the bridge publishes locally never goes out again; a 5.0 remote
//     subscription has No Local too; a 3.1.1 remote is told it is a bridge
//     (level 0x84: mosquitto then applies No Local itself).

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// qos0Backlog is the writer queue length above which a QoS 0 message is
// dropped instead of queued (at most once allows it; memory stays bounded
// when one side is slower than the other).
const qos0Backlog = 4096

type link struct {
	b             *Bridge
	remote, local *mconn
	rc, lc        caps // what the remote and the local broker accept
	sem           chan struct{}
	draining      atomic.Bool // stopping: take no new message, let the exchanges in progress finish

	// Guarded by b.mu (both readers touch them).
	absorbOut map[uint16]struct{} // local QoS 2 deliveries whose PUBREL the bridge answers
	absorbIn  map[uint16]struct{} // remote QoS 2 publishes whose PUBREL the bridge answers
	out       map[uint16]outState // forwarded deliveries awaiting the remote's answer
	in        map[uint16]inState  // inbound publishes awaiting the local broker's answer
}

type outState struct{ local, remote byte } // QoS on each side
type inState struct {
	local, remote byte
	quota         bool // holds a slot of sem
}

func newLink(b *Bridge, remote, local *mconn, rc, lc caps) *link {
	return &link{
		b: b, remote: remote, local: local, rc: rc, lc: lc,
		sem:       make(chan struct{}, max(1, min(b.cfg.Window, lc.recvMax))),
		absorbOut: map[uint16]struct{}{}, absorbIn: map[uint16]struct{}{},
		out: map[uint16]outState{}, in: map[uint16]inState{},
	}
}

// errUnexpected is a packet the other side should not send a client.
func errUnexpected(side string, p wire.Packet) error {
	return fmt.Errorf("%s broker sent an unexpected %v", side, p.Type())
}

// readLocal handles the local broker's packets until the connection ends.
func (l *link) readLocal() error {
	for {
		p, err := l.local.read(0)
		if err != nil {
			return err
		}
		switch p := p.(type) {
		case *wire.Publish:
			l.outbound(p)
		case *wire.Ack:
			switch p.Kind {
			case wire.PUBACK:
				l.localPuback(p)
			case wire.PUBREC:
				l.localPubrec(p)
			case wire.PUBREL:
				l.localPubrel(p)
			case wire.PUBCOMP:
				l.remote.send(&wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
				l.b.stats.inForwarded.Add(1)
			}
		case *wire.Disconnect:
			return fmt.Errorf("local broker disconnected the bridge: reason 0x%02X %s", byte(p.ReasonCode), reasonString(p.Props))
		case *wire.Pingresp:
		default:
			return errUnexpected("local", p)
		}
	}
}

// readRemote handles the remote broker's packets until the connection ends.
func (l *link) readRemote() error {
	var timeout time.Duration
	if ka := l.rc.keepAlive; ka > 0 {
		timeout = ka * 3 / 2
	}
	for {
		p, err := l.remote.read(timeout)
		if err != nil {
			return err
		}
		switch p := p.(type) {
		case *wire.Publish:
			if !l.inbound(p) {
				return l.remote.failure()
			}
		case *wire.Ack:
			switch p.Kind {
			case wire.PUBACK:
				l.remotePuback(p)
			case wire.PUBREC:
				l.remotePubrec(p)
			case wire.PUBREL:
				l.remotePubrel(p)
			case wire.PUBCOMP:
				l.b.mu.Lock()
				delete(l.out, p.PacketID)
				l.b.mu.Unlock()
				l.local.send(&wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID})
				l.b.stats.outForwarded.Add(1)
			}
		case *wire.Suback:
			l.b.subacked(p)
		case *wire.Unsuback, *wire.Pingresp:
		case *wire.Disconnect:
			return fmt.Errorf("remote broker disconnected the bridge: reason 0x%02X %s", byte(p.ReasonCode), reasonString(p.Props))
		default:
			return errUnexpected("remote", p)
		}
	}
}

// forwardProps are the 5.0 properties a message keeps across the bridge:
// everything but what belongs to one connection (topic alias, the
// receiver's subscription identifiers).
func forwardProps(p *wire.Properties) *wire.Properties {
	if p == nil || (p.TopicAlias == nil && len(p.SubscriptionIDs) == 0) {
		return p
	}
	q := *p
	q.TopicAlias, q.SubscriptionIDs = nil, nil
	if q.PayloadFormat == nil && q.MessageExpiry == nil && q.ContentType == nil && q.ResponseTopic == "" &&
		q.CorrelationData == nil && len(q.User) == 0 {
		return nil
	}
	return &q
}

// outbound forwards a local delivery.
func (l *link) outbound(p *wire.Publish) {
	if l.draining.Load() {
		return // unacknowledged: redelivered on the next link
	}
	topic, ok := l.b.outMap.apply(p.Topic)
	if !ok {
		l.absorbLocal(p, "no rule renames its topic validly")
		return
	}
	fp := &wire.Publish{Dup: p.Dup, QoS: min(p.QoS, l.rc.maxQoS), Retain: p.Retain && l.rc.retain,
		Topic: topic, PacketID: p.PacketID, Props: forwardProps(p.Props), Payload: p.Payload}
	if fp.QoS == 0 {
		fp.PacketID, fp.Dup = 0, false
	}
	if l.rc.maxPacket > 0 && wire.Size(fp, l.remote.v) > int(l.rc.maxPacket) {
		l.absorbLocal(p, "larger than the remote's maximum packet size")
		return
	}
	if fp.QoS > 0 {
		l.b.mu.Lock()
		l.out[p.PacketID] = outState{local: p.QoS, remote: fp.QoS}
		l.b.mu.Unlock()
	} else if l.remote.backlog() >= qos0Backlog {
		l.b.stats.outDropped.Add(1) // QoS 0 from a QoS 0 delivery: nothing to acknowledge
		l.b.log.Debug("QoS 0 message dropped: the remote is not keeping up", "topic", p.Topic)
		if p.QoS > 0 {
			l.answerLocal(p.PacketID, p.QoS)
		}
		return
	}
	l.remote.send(fp)
	l.b.stats.outBytes.Add(int64(len(p.Payload)))
	if fp.QoS == 0 {
		l.b.stats.outForwarded.Add(1)
		if p.QoS > 0 {
			// The remote takes QoS 0 only: this is as far as the
			// message goes; complete the local exchange.
			l.answerLocal(p.PacketID, p.QoS)
		}
	}
}

// answerLocal completes a local delivery the remote will not acknowledge.
func (l *link) answerLocal(pid uint16, qos byte) { l.answer(l.local, l.absorbOut, pid, qos) }

// answerRemote completes a remote delivery the local broker will not
// acknowledge.
func (l *link) answerRemote(pid uint16, qos byte) { l.answer(l.remote, l.absorbIn, pid, qos) }

// answer acknowledges a publish received on side: QoS 1 with PUBACK, QoS 2
// with PUBREC, noting pid in absorb so that the bridge itself answers the
// PUBREL that follows.
func (l *link) answer(side *mconn, absorb map[uint16]struct{}, pid uint16, qos byte) {
	switch qos {
	case 1:
		side.send(&wire.Ack{Kind: wire.PUBACK, PacketID: pid})
	case 2:
		l.b.mu.Lock()
		absorb[pid] = struct{}{}
		l.b.mu.Unlock()
		side.send(&wire.Ack{Kind: wire.PUBREC, PacketID: pid})
	}
}

// absorbLocal drops a local delivery that cannot be forwarded.
func (l *link) absorbLocal(p *wire.Publish, why string) {
	l.b.stats.outDropped.Add(1)
	l.b.log.Warn("message not forwarded", "topic", p.Topic, "qos", p.QoS, "bytes", len(p.Payload), "why", why)
	l.answerLocal(p.PacketID, p.QoS)
}

func (l *link) remotePuback(p *wire.Ack) {
	l.b.mu.Lock()
	st, ok := l.out[p.PacketID]
	delete(l.out, p.PacketID)
	l.b.mu.Unlock()
	l.countRemoteAnswer(p)
	if ok && st.local == 2 {
		// Forwarded at QoS 1 (the remote's maximum): the remote has it.
		l.answerLocal(p.PacketID, 2)
		return
	}
	l.local.send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
}

func (l *link) countRemoteAnswer(p *wire.Ack) {
	if p.ReasonCode.IsError() {
		l.b.stats.outDropped.Add(1)
		l.b.log.Warn("remote broker refused a forwarded message", "packet", p.Kind, "pid", p.PacketID,
			"reason", fmt.Sprintf("0x%02X", byte(p.ReasonCode)), "why", reasonString(p.Props))
		return
	}
	if p.Kind == wire.PUBACK {
		l.b.stats.outForwarded.Add(1)
	}
}

func (l *link) remotePubrec(p *wire.Ack) {
	if p.ReasonCode.IsError() {
		l.b.mu.Lock()
		delete(l.out, p.PacketID)
		l.b.mu.Unlock()
		l.countRemoteAnswer(p)
	}
	// The remote holds the message (or refused it): the local broker
	// may drop it from the queue and keeps only "PUBREC received".
	l.local.send(&wire.Ack{Kind: wire.PUBREC, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
}

func (l *link) localPubrel(p *wire.Ack) {
	l.b.mu.Lock()
	_, mine := l.absorbOut[p.PacketID]
	delete(l.absorbOut, p.PacketID)
	l.b.mu.Unlock()
	if mine {
		l.local.send(&wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID})
		return
	}
	l.remote.send(&wire.Ack{Kind: wire.PUBREL, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
}

// inbound republishes a remote delivery locally. It returns false when the
// link ended while it waited for the local broker's receive quota.
func (l *link) inbound(p *wire.Publish) bool {
	if l.draining.Load() {
		return true // unacknowledged: the remote sends it again on the next link
	}
	topic, ok := l.b.inMap.apply(p.Topic)
	if !ok {
		l.absorbRemote(p, "no rule renames its topic validly")
		return true
	}
	fp := &wire.Publish{Dup: p.Dup, QoS: min(p.QoS, l.lc.maxQoS), Retain: p.Retain && l.lc.retain,
		Topic: topic, PacketID: p.PacketID, Props: forwardProps(p.Props), Payload: p.Payload}
	if fp.QoS == 0 {
		fp.PacketID, fp.Dup = 0, false
	}
	if l.lc.maxPacket > 0 && wire.Size(fp, wire.V5) > int(l.lc.maxPacket) {
		l.absorbRemote(p, "larger than the local broker's maximum packet size")
		return true
	}
	if fp.QoS == 0 && l.local.backlog() >= qos0Backlog {
		l.b.stats.inDropped.Add(1)
		l.b.log.Debug("QoS 0 message dropped: the local broker is not keeping up", "topic", p.Topic)
		if p.QoS > 0 {
			l.answerRemote(p.PacketID, p.QoS)
		}
		return true
	}
	l.b.stats.inBytes.Add(int64(len(p.Payload)))
	if fp.QoS == 0 {
		l.local.send(fp)
		l.b.stats.inForwarded.Add(1)
		if p.QoS > 0 {
			l.answerRemote(p.PacketID, p.QoS)
		}
		return true
	}
	l.b.mu.Lock()
	st, again := l.in[p.PacketID]
	l.b.mu.Unlock()
	if !again || !st.quota {
		select {
		case l.sem <- struct{}{}:
		case <-l.local.done:
			return false
		case <-l.remote.done:
			return false
		}
	}
	l.b.mu.Lock()
	l.in[p.PacketID] = inState{local: fp.QoS, remote: p.QoS, quota: true}
	l.b.mu.Unlock()
	l.local.send(fp)
	return true
}

func (l *link) release(st inState) {
	if st.quota {
		select {
		case <-l.sem:
		default:
		}
	}
}

func (l *link) absorbRemote(p *wire.Publish, why string) {
	l.b.stats.inDropped.Add(1)
	l.b.log.Warn("message from the remote not republished", "topic", p.Topic, "qos", p.QoS, "bytes", len(p.Payload), "why", why)
	l.answerRemote(p.PacketID, p.QoS)
}

func (l *link) countLocalAnswer(p *wire.Ack) {
	if p.ReasonCode.IsError() {
		l.b.stats.inDropped.Add(1)
		l.b.log.Warn("local broker refused a message from the remote", "packet", p.Kind, "pid", p.PacketID,
			"reason", fmt.Sprintf("0x%02X", byte(p.ReasonCode)), "why", reasonString(p.Props))
		return
	}
	if p.Kind == wire.PUBACK {
		l.b.stats.inForwarded.Add(1)
	}
}

func (l *link) localPuback(p *wire.Ack) {
	l.b.mu.Lock()
	st, ok := l.in[p.PacketID]
	delete(l.in, p.PacketID)
	l.b.mu.Unlock()
	l.release(st)
	l.countLocalAnswer(p)
	if ok && st.remote == 2 {
		l.answerRemote(p.PacketID, 2) // republished at QoS 1, the local maximum
		return
	}
	l.remote.send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
}

func (l *link) localPubrec(p *wire.Ack) {
	if p.ReasonCode.IsError() {
		l.b.mu.Lock()
		st := l.in[p.PacketID]
		delete(l.in, p.PacketID)
		l.b.mu.Unlock()
		l.release(st)
		l.countLocalAnswer(p)
	}
	l.remote.send(&wire.Ack{Kind: wire.PUBREC, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
}

func (l *link) remotePubrel(p *wire.Ack) {
	l.b.mu.Lock()
	_, mine := l.absorbIn[p.PacketID]
	delete(l.absorbIn, p.PacketID)
	st, ok := l.in[p.PacketID]
	delete(l.in, p.PacketID)
	l.b.mu.Unlock()
	if mine {
		l.remote.send(&wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID})
		return
	}
	if ok {
		// The local broker frees the slot when it reads this PUBREL,
		// which it does before any PUBLISH queued after it.
		l.release(st)
	}
	l.local.send(&wire.Ack{Kind: wire.PUBREL, PacketID: p.PacketID, ReasonCode: p.ReasonCode})
}

// drain stops taking new messages and waits, at most d, for the exchanges
// in progress to finish (so that a graceful stop leaves nothing to
// redeliver, hence no duplicates), or for the link to fail (errc).
func (l *link) drain(d time.Duration, errc <-chan error) error {
	l.draining.Store(true)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		l.b.mu.Lock()
		busy := len(l.out) + len(l.in)
		l.b.mu.Unlock()
		if busy == 0 {
			// The last acknowledgements are queued; let them out.
			l.local.flush(time.Second)
			l.remote.flush(time.Second)
			return nil
		}
		select {
		case err := <-errc:
			return err
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// inflight reports the exchanges in progress each way.
func (l *link) inflight() (out, in int) {
	return len(l.out), len(l.in)
}
