package engine

import (
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// idLocks serialises CONNECT handling per client id, so that two connections
// racing for one id take over one after the other, while connections for
// different ids (and their session commits) proceed in parallel.
type idLocks struct {
	mu    sync.Mutex
	locks map[string]*idLock
}

type idLock struct {
	mu   sync.Mutex
	refs int
}

func (l *idLocks) lock(id string) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*idLock)
	}
	k := l.locks[id]
	if k == nil {
		k = &idLock{}
		l.locks[id] = k
	}
	k.refs++
	l.mu.Unlock()
	k.mu.Lock()
	return func() {
		k.mu.Unlock()
		l.mu.Lock()
		k.refs--
		if k.refs == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
}

// takeoverWait bounds how long a new connection waits for the old one with
// the same client id to finish.
const takeoverWait = 10 * time.Second

// maxClientIDLen31 is MQTT 3.1's limit on a client identifier's length.
const maxClientIDLen31 = 23

// handleConnect validates CONNECT, takes over or creates the session,
// makes it durable when it is persistent, and queues CONNACK. It returns
// false if the connection was refused (the answer, if any, already written).
func (c *conn) handleConnect(p *wire.Connect) bool {
	b := c.b
	c.version = p.Version
	c.bridge = p.Bridge
	c.isV5.Store(p.Version == wire.V5)
	c.r.SetMaxPacketSize(b.opts.MaxPacketSize)
	if p.Version == wire.V5 && p.Props != nil && p.Props.MaximumPacketSize != nil {
		c.maxOut = *p.Props.MaximumPacketSize // before any refusal: its CONNACK must fit too
	}
	id := p.ClientID
	assigned := false
	if id == "" {
		if p.Version == wire.V5 || (p.Version == wire.V311 && p.CleanStart) {
			id, assigned = newClientID(), true
		} else if p.Version == wire.V31 {
			return c.refuse(wire.ConnRefusedIdentifier, wire.ClientIDNotValid, "empty client id (MQTT 3.1 requires one)")
		} else {
			return c.refuse(wire.ConnRefusedIdentifier, wire.ClientIDNotValid, "empty client id without clean session")
		}
	}
	if len(id) > b.opts.MaxClientIDLen || !utf8.ValidString(id) {
		b.stats.Security.ClientIDRejected.Add(1)
		return c.refuse(wire.ConnRefusedIdentifier, wire.ClientIDNotValid, "client id too long or not UTF-8", "len", len(id))
	}
	// MQTT 3.1 (MQIsdp) bounds the identifier at 23 characters and names
	// the answer: "more than 23 characters ... CONNACK return code 2".
	// 3.1.1 and 5.0 lifted the bound, so only MaxClientIDLen applies there.
	if p.Version == wire.V31 && utf8.RuneCountInString(id) > maxClientIDLen31 {
		b.stats.Security.ClientIDRejected.Add(1)
		return c.refuse(wire.ConnRefusedIdentifier, wire.ClientIDNotValid, "MQTT 3.1 client id over 23 characters", "len", len(id))
	}
	if !c.admitClientID(id) { // prefix reserved for internal sessions (internal.go)
		return false
	}
	if p.Will != nil {
		if err := wire.ValidateTopicName(p.Will.Topic); err != nil {
			return c.refuse(wire.ConnRefusedServerUnavailable, wire.TopicNameInvalid, "invalid will topic", "err", err)
		}
		if isSysTopic(p.Will.Topic) {
			return c.refuse(wire.ConnRefusedNotAuthorized, wire.NotAuthorized, "will topic under $SYS/ (the broker's)", "topic", p.Will.Topic)
		}
	}
	c.clientID = id
	c.log = c.log.With("client", id)
	c.keepAlive = time.Duration(p.KeepAlive) * time.Second
	expiry := sessionExpiry(p)
	window, ok := c.negotiate(p, &expiry) // 5.0 properties, capabilities, enhanced auth (connect5.go)
	if !ok {
		return false
	}
	c.enableTCPKeepAlive()      // only for keep alive 0 (tcpkeepalive.go)
	if !c.admitConnect(p, id) { // limits, passwords, certificates, will ACL (authz.go)
		return false
	}
	var ackProps *wire.Properties
	if p.Version == wire.V5 {
		// Built before the session changes: a CONNACK that cannot fit the
		// client's Maximum Packet Size (its properties announce only what
		// the client must know: limits, and capabilities that are off)
		// refuses the
		// connection instead of leaving the client without one (§3.2.0-1).
		ackProps = c.connackProps(assigned, id, expiry)
		if n := wire.Size(&wire.Connack{Props: ackProps}, wire.V5); c.maxOut > 0 && uint32(n) > c.maxOut {
			return c.refuse(wire.ConnRefusedServerUnavailable, wire.ImplementationSpecificError,
				"the CONNACK would exceed the client's maximum packet size", "connack_size", n, "max", c.maxOut)
		}
	}

	unlock := b.connects.lock(id)
	defer unlock()

	old := b.lookup(id)
	if old != nil && !c.mayTake(old) {
		return false
	}
	if old != nil {
		old.mu.Lock()
		oc, detaching := old.conn, old.detaching
		old.mu.Unlock()
		if oc != nil {
			b.stats.SessionsTakenOver.Add(1)
			c.log.Info("client id taken over by a new connection")
			oc.takeover()
			detaching = oc.finished // closed after its teardown, detach included
		}
		if detaching != nil { // closed long ago for a session that is simply offline
			select {
			case <-detaching:
			case <-time.After(takeoverWait):
				c.log.Error("previous connection did not finish; refusing take-over")
				return c.refuse(wire.ConnRefusedServerUnavailable, wire.ServerBusy, "take-over timed out")
			}
		}
		old = b.lookup(id) // a clean session is gone after its teardown
	}

	now := b.now()
	rec := store.Session{
		ClientID:       id,
		Version:        byte(p.Version),
		ExpiryInterval: expiry,
		Connected:      true,
		ConnectedAt:    now.UnixNano(),
		Username:       c.sec.user,
	}
	if p.Will != nil {
		rec.Will = willRecord(p.Will)
	}

	var evs []*store.Event
	present := false
	s := old
	var oldWill *routed // the pending will of a session this CONNECT ends
	// A session that is not persistent never outlives its connection: one
	// still here is being torn down (its connection closed before this
	// CONNECT took the lock), so it is not resumed.
	if s != nil && (p.CleanStart || !s.persistent || c.replaces(s)) {
		var drop []*store.Event
		drop, oldWill = b.dropWithWill(s, now)
		evs = append(evs, drop...)
		s = nil
	}
	if s != nil {
		present = true
	}
	if expiry > 0 || (s != nil && s.persistent) {
		evs = append(evs, &store.Event{Kind: store.EvSessionOpened, Time: now.UnixNano(), Client: id, Session: &rec})
	}
	if len(evs) > 0 {
		if err := b.commitWait(evs, true); err != nil {
			if isNoSpace(err) {
				return c.refuseConnectNoSpace() // storefull.go
			}
			c.log.Error("store commit failed; refusing connection", "err", err)
			return c.refuse(wire.ConnRefusedServerUnavailable, wire.ServerUnavailable, "store failure")
		}
	}
	if oldWill != nil {
		b.publishWill(oldWill, id)
	}
	if s == nil {
		if expiry > 0 {
			qi := b.store.QueueInfo(id)
			s = b.newSession(id, true, qi.Head, qi.Next, qi.Head)
		} else {
			s = b.newSession(id, false, 0, 0, 0)
		}
		s.user = c.sec.user
		b.mu.Lock()
		b.sessions[id] = s
		b.mu.Unlock()
	}

	s.mu.Lock()
	if s.rec.WillAt != 0 {
		c.log.Debug("pending will cancelled: the client reconnected before its will delay passed")
	}
	s.rec = rec
	s.will = rec.Will
	if s.persistent {
		s.out.Rewind(b.store.QueueInfo(id).Head)
	}
	s.out.SetWindow(window)
	s.conn = c
	s.mu.Unlock()
	c.sess = s
	c.resumed = present
	b.stats.connected()

	ack := &wire.Connack{SessionPresent: present && p.Version != wire.V31}
	ack.Props = ackProps
	c.send(ack)
	c.log.Debug("client connected", "version", p.Version, "clean", p.CleanStart, "expiry", expiry, "present", present)
	return true
}

// refuse answers CONNACK with a failure code (and, in 5.0, msg as the
// Reason String) and ends the connection.
func (c *conn) refuse(code3, code5 wire.ReasonCode, msg string, args ...any) bool {
	c.b.stats.ProtocolErrors.Add(1)
	c.log.Warn("refusing connection: "+msg, args...)
	ack := &wire.Connack{ReasonCode: code3}
	if c.version == wire.V5 {
		if !wire.ValidReasonCode(wire.CONNACK, code5, wire.V5) {
			code5 = wire.UnspecifiedError
		}
		ack.ReasonCode = code5
		ack.Props = &wire.Properties{ReasonString: msg}
		if c.maxOut > 0 && uint32(wire.Size(ack, c.version)) > c.maxOut {
			ack.Props = nil // §3.2.2.3.9: no Reason String beyond the client's maximum
		}
		if c.maxOut > 0 && uint32(wire.Size(ack, c.version)) > c.maxOut {
			c.log.Warn("no CONNACK sent: even a bare one exceeds the client's maximum packet size", "max", c.maxOut)
			return false // the connection closes without an answer it could not take
		}
	}
	c.writeNow(ack, c.version)
	return false
}

func willRecord(w *wire.Will) *store.Will {
	sw := &store.Will{Topic: w.Topic, Payload: w.Payload, QoS: w.QoS, Retain: w.Retain}
	if w.Props != nil {
		sw.Props = wire.AppendProperties(nil, w.Props)
		if w.Props.WillDelay != nil {
			sw.Delay = *w.Props.WillDelay
		}
	}
	return sw
}

// dropSession removes a session and everything it owns (clean start, or end
// of a session with no expiry), returning the store events for a persistent
// one. The caller commits them.
func (b *Broker) dropSession(s *Session, now time.Time) []*store.Event {
	b.unlinkSession(s)
	if !s.persistent {
		return nil
	}
	return []*store.Event{{Kind: store.EvSessionDropped, Time: now.UnixNano(), Client: s.id}}
}

// commitWait commits and waits for completion.
func (b *Broker) commitWait(evs []*store.Event, durable bool) error {
	ch := make(chan error, 1)
	b.commit(evs, durable, func(err error) { ch <- err })
	return <-ch
}
