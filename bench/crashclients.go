package bench

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// The clients of the crash scenario. Unlike the load generator's, their
// MQTT state outlives their connections, as a conforming persistent client's
// must, because the broker is killed under them:
//
//   - a crash publisher keeps its in-flight QoS 1 / 2 publishes across
//     connections: on every reconnect it sends again, with DUP, each publish
//     not yet acknowledged, and PUBREL for each QoS 2 one already PUBREC'd;
//     the acknowledgement (PUBACK, PUBREC) is the broker's promise, recorded
//     per message;
//   - a crash subscriber is an exactly-once receiver for QoS 2 ("method A"
//     of MQTT 4.3.3): a message counts as delivered at its PUBLISH unless its
//     packet id still awaits PUBREL (then it is the broker's resend), and
//     the packet id is released at PUBREL. A QoS 2 message counted twice is
//     a duplicate the broker should not have caused. QoS 1 redeliveries are
//     allowed and only counted.

// crashOut is a publish in flight.
type crashOut struct {
	seq    uint64
	qos    byte
	topic  string
	pubrec bool // QoS 2: PUBREC received, PUBREL sent
	// relResent: the PUBREL was sent again on a later connection; the
	// broker may have completed the flow before the kill and answer 0x92.
	relResent bool
}

// crashPub is one persistent publisher.
type crashPub struct {
	idx    uint32
	id     string
	run    uint32
	window int
	topics [3]string // QoS 1, QoS 2, retained

	mu       sync.Mutex
	seq      uint64
	nextPID  uint16
	inflight map[uint16]*crashOut
	space    chan struct{}
	onAcked  func() // called at every acknowledgement (under mu)

	sent, acked [2]seqSet // QoS 1, QoS 2 (not retained)
	retSent     int64     // seq of the newest retained publish sent, -1 none
	retAcked    int64     // seq of the newest retained publish acknowledged, -1 none
	counts      [3]int64  // acknowledged: QoS 1, QoS 2, retained
	sentCount   int64
	problems    []string
}

func newCrashPub(run, idx uint32, id, prefix string, window int) *crashPub {
	return &crashPub{
		idx: idx, id: id, run: run, window: window,
		topics: [3]string{
			fmt.Sprintf("%s/crash/1/%d", prefix, idx),
			fmt.Sprintf("%s/crash/2/%d", prefix, idx),
			fmt.Sprintf("%s/crash/r/%d", prefix, idx),
		},
		inflight: map[uint16]*crashOut{},
		space:    make(chan struct{}, 1),
		retSent:  -1, retAcked: -1,
	}
}

// kind is what the message with sequence seq is: every eighth a retained
// QoS 1 publish, the others alternately QoS 1 and QoS 2.
func crashKind(seq uint64) (qos byte, retained bool) {
	switch {
	case seq%8 == 7:
		return 1, true
	case seq%2 == 0:
		return 1, false
	default:
		return 2, false
	}
}

func (p *crashPub) problem(format string, args ...any) {
	if len(p.problems) < 10 {
		p.problems = append(p.problems, fmt.Sprintf("%s: ", p.id)+fmt.Sprintf(format, args...))
	}
}

// session runs one connection: resend what is in flight, then publish new
// messages (unless final) until the connection ends, or — final — until
// nothing is in flight.
func (p *crashPub) session(ctx context.Context, c *conn, payload int, final bool, acked func(), stop <-chan struct{}) error {
	p.mu.Lock()
	p.onAcked = acked
	c.onAck = p.onAck
	c.onPubrec = p.onPubrec
	buf := make([]byte, max(payload, stampLen))
	// Resend in the original order: the broker applies them in order, and a
	// retained topic must end with the newest.
	pids := make([]uint16, 0, len(p.inflight))
	for pid := range p.inflight {
		pids = append(pids, pid)
	}
	sort.Slice(pids, func(i, j int) bool { return p.inflight[pids[i]].seq < p.inflight[pids[j]].seq })
	for _, pid := range pids {
		o := p.inflight[pid]
		if o.pubrec {
			o.relResent = true
			c.queueAck(wire.PUBREL, pid)
			continue
		}
		putStamp(buf, p.run, p.idx, o.seq, clock())
		c.queuePublishFlags(o.topic, o.qos, pid, true, o.topic == p.topics[2], buf)
	}
	p.mu.Unlock()
	c.start()
	for {
		p.mu.Lock()
		for !final && len(p.inflight) < p.window {
			p.sendLocked(c, buf)
		}
		left := len(p.inflight)
		p.mu.Unlock()
		if err := c.flush(); err != nil {
			return err
		}
		if final && left == 0 {
			return nil
		}
		select {
		case <-p.space:
		case <-c.done:
			return c.errOr(errBrokerClosed)
		case <-stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (p *crashPub) sendLocked(c *conn, buf []byte) {
	for {
		p.nextPID++
		if p.nextPID == 0 {
			p.nextPID = 1
		}
		if p.inflight[p.nextPID] == nil {
			break
		}
	}
	seq := p.seq
	p.seq++
	qos, retained := crashKind(seq)
	o := &crashOut{seq: seq, qos: qos, topic: p.topics[qos-1]}
	if retained {
		o.topic = p.topics[2]
		p.retSent = int64(seq)
	} else {
		p.sent[qos-1].add(seq)
	}
	p.inflight[p.nextPID] = o
	p.sentCount++
	putStamp(buf, p.run, p.idx, seq, clock())
	c.queuePublishFlags(o.topic, qos, p.nextPID, false, retained, buf)
}

// onPubrec records a QoS 2 promise (reader goroutine).
func (p *crashPub) onPubrec(pid uint16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.inflight[pid]
	if o == nil || o.qos != 2 {
		p.problem("PUBREC for packet id %d, which has no QoS 2 publish in flight", pid)
		return
	}
	if !o.pubrec {
		o.pubrec = true
		p.promisedLocked(o)
	}
}

// onAck handles PUBACK, PUBCOMP and refusals (reader goroutine).
func (p *crashPub) onAck(kind wire.PacketType, pid uint16, code byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.inflight[pid]
	switch {
	case o == nil:
		if kind != wire.PUBCOMP { // a PUBCOMP may answer the PUBREL resent after a kill
			p.problem("%v for packet id %d, which is not in flight", kind, pid)
		}
		return
	case kind == wire.PUBCOMP && code == 0x92 && o.pubrec && o.relResent:
		// 5.0 "packet identifier not found": the broker had released it
		// (and answered PUBCOMP) before the kill; the flow is complete.
	case code >= 0x80:
		p.problem("%v refused message %d: reason code 0x%02X", kind, o.seq, code)
	case kind == wire.PUBACK && o.qos == 1:
		p.promisedLocked(o)
	case kind == wire.PUBCOMP && o.qos == 2 && o.pubrec:
	default:
		p.problem("%v for a QoS %d publish (PUBREC'd %v)", kind, o.qos, o.pubrec)
		return
	}
	delete(p.inflight, pid)
	select {
	case p.space <- struct{}{}:
	default:
	}
}

// promisedLocked records an acknowledgement.
func (p *crashPub) promisedLocked(o *crashOut) {
	switch {
	case o.topic == p.topics[2]:
		p.retAcked = max(p.retAcked, int64(o.seq))
		p.counts[2]++
	default:
		p.acked[o.qos-1].add(o.seq)
		p.counts[o.qos-1]++
	}
	if p.onAcked != nil {
		p.onAcked()
	}
}

// crashSub is one persistent subscriber.
type crashSub struct {
	id     string
	run    uint32
	qos    byte
	filter string

	mu           sync.Mutex
	got          []seqSet // by publisher
	awaitRel     map[uint16][2]uint64
	duplicates   int64 // QoS 2 delivered twice
	redeliveries int64 // QoS 1 delivered again (allowed)
	foreign      int64
	lastRecv     time.Time
	problems     []string
}

func newCrashSub(run uint32, id, filter string, qos byte, pubs int) *crashSub {
	return &crashSub{id: id, run: run, qos: qos, filter: filter, got: make([]seqSet, pubs), awaitRel: map[uint16][2]uint64{}}
}

func (s *crashSub) problem(format string, args ...any) {
	if len(s.problems) < 10 {
		s.problems = append(s.problems, fmt.Sprintf("%s: ", s.id)+fmt.Sprintf(format, args...))
	}
}

func (s *crashSub) attach(c *conn) {
	c.onPublish = s.onPublish
	c.onPubrel = s.onPubrel
}

func (s *crashSub) onPublish(p *publishView) {
	run, pub, seq, _, ok := readStamp(p.Payload)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastRecv = time.Now()
	if !ok || run != s.run || int(pub) >= len(s.got) {
		s.foreign++
		return
	}
	if p.QoS != s.qos {
		s.problem("message %d/%d delivered at QoS %d, want %d", pub, seq, p.QoS, s.qos)
	}
	key := [2]uint64{uint64(pub), seq}
	if p.QoS == 2 {
		if held, waiting := s.awaitRel[p.PID]; waiting {
			if held != key {
				s.problem("packet id %d still awaits PUBREL for %d/%d, but the broker sent %d/%d with it", p.PID, held[0], held[1], pub, seq)
			}
			return // the broker's resend of a message already delivered
		}
		s.awaitRel[p.PID] = key
		if !s.got[pub].add(seq) {
			s.duplicates++
		}
		return
	}
	if !s.got[pub].add(seq) {
		s.redeliveries++
	}
}

func (s *crashSub) onPubrel(pid uint16) {
	s.mu.Lock()
	delete(s.awaitRel, pid) // unknown: a PUBREL resent after a kill
	s.mu.Unlock()
}

// missing counts the messages pubs acknowledged at the subscriber's QoS
// that it has not received.
func (s *crashSub) missing(pubs []*crashPub) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for i, p := range pubs {
		p.mu.Lock()
		n += s.got[i].missing(&p.acked[s.qos-1])
		p.mu.Unlock()
	}
	return n
}

// phantoms counts deliveries of messages that were never sent.
func (s *crashSub) phantoms(pubs []*crashPub) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for i, p := range pubs {
		p.mu.Lock()
		n += p.sent[s.qos-1].missing(&s.got[i])
		p.mu.Unlock()
	}
	return n
}

// queuePublishFlags appends a PUBLISH with DUP and RETAIN as given.
func (c *conn) queuePublishFlags(topic string, qos byte, pid uint16, dup, retain bool, payload []byte) {
	c.wmu.Lock()
	at := len(c.pending)
	c.pending = appendPublish(c.pending, c.v, topic, qos, pid, dup, payload)
	if retain {
		c.pending[at] |= 0x01
	}
	c.wmu.Unlock()
}
