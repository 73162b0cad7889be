package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// The power-cut workload: raw MQTT 3.1.1 clients that record, on one logical
// clock, every acknowledgement they receive, so that a copy of the disk
// taken between two ticks can be checked against exactly what the broker had
// promised before it. All clients have persistent sessions.
//
//   - publishers send QoS 1 and QoS 2 to pc/m/<i>, up to pcWindow in flight;
//   - subscribers hold "pc/m/+" at QoS 2 and keep connecting, reading for a
//     while, and leaving (with DISCONNECT or by dropping the socket);
//   - one retainer sets and clears retained values on pc/r/<k>, one at a time.

const pcWindow = 8

// pcPace is a publisher's pause per message. The race detector slows the
// broker (and every cut's recovery) ten times over: it gets a smaller store.
var pcPace = map[bool]time.Duration{false: time.Millisecond, true: 5 * time.Millisecond}[raceEnabled]

// pcMsg is what the workload knows of one published message.
type pcMsg struct {
	qos      byte
	pid      uint16
	from     string
	sentAt   uint64 // PUBLISH written
	ackedAt  uint64 // PUBACK / PUBREC received: the broker's promise
	pubrelAt uint64 // QoS 2: PUBREL written (the broker may forget the pid)
}

// pcRetained is one retained publish.
type pcRetained struct {
	topic   string
	seq     int // per topic, increasing
	empty   bool
	sentAt  uint64
	ackedAt uint64
}

type recvKey struct{ sub, msg string }

// tracker is the workload's record. Each time is the first one.
type tracker struct {
	clk atomic.Uint64

	mu         sync.Mutex
	connacked  map[string]uint64
	subacked   map[string]uint64
	msgs       map[string]*pcMsg
	received   map[recvKey]uint64 // PUBLISH received by a subscriber
	pubrelRecv map[recvKey]uint64 // QoS 2: PUBREL received by a subscriber
	retained   map[string][]*pcRetained
	errs       []error
}

func newTracker() *tracker {
	return &tracker{
		connacked:  map[string]uint64{},
		subacked:   map[string]uint64{},
		msgs:       map[string]*pcMsg{},
		received:   map[recvKey]uint64{},
		pubrelRecv: map[recvKey]uint64{},
		retained:   map[string][]*pcRetained{},
	}
}

func (tr *tracker) tick() uint64 { return tr.clk.Add(1) }

func (tr *tracker) fail(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.errs) < 20 {
		tr.errs = append(tr.errs, fmt.Errorf(format, args...))
	}
}

func (tr *tracker) first(m map[string]uint64, k string) {
	tr.mu.Lock()
	if _, ok := m[k]; !ok {
		m[k] = tr.tick()
	}
	tr.mu.Unlock()
}

// pcConn is one raw client connection.
type pcConn struct {
	nc  net.Conn
	r   *wire.Reader
	buf []byte
}

func pcDial(addr, id string, tr *tracker) (*pcConn, bool, error) {
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, false, err
	}
	c := &pcConn{nc: nc, r: wire.NewReader(nc, 1<<20)}
	if err := c.send(&wire.Connect{Version: wire.V311, ClientID: id, KeepAlive: 60}); err != nil {
		nc.Close()
		return nil, false, err
	}
	// Generous: under the race detector on a loaded machine, a CONNECT
	// waits behind every fsync queued before it.
	p, err := c.recv(30 * time.Second)
	if err != nil {
		nc.Close()
		return nil, false, fmt.Errorf("%s: waiting for CONNACK: %w", id, err)
	}
	ack, ok := p.(*wire.Connack)
	if !ok || ack.ReasonCode != 0 {
		nc.Close()
		return nil, false, fmt.Errorf("%s: CONNACK expected, got %#v", id, p)
	}
	tr.first(tr.connacked, id)
	return c, ack.SessionPresent, nil
}

func (c *pcConn) send(ps ...wire.Packet) error {
	c.buf = c.buf[:0]
	for _, p := range ps {
		var err error
		if c.buf, err = wire.AppendPacket(c.buf, p, wire.V311); err != nil {
			return err
		}
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.nc.Write(c.buf)
	return err
}

func (c *pcConn) recv(timeout time.Duration) (wire.Packet, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	return c.r.ReadPacket(wire.V311)
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// runPublisher publishes until stop is closed and every message it sent is
// complete (or the connection fails, which is an error: the broker never
// closes a well-behaved client).
func runPublisher(addr string, i int, rng *rand.Rand, tr *tracker, stop <-chan struct{}) {
	id := fmt.Sprintf("pc-pub-%d", i)
	c, _, err := pcDial(addr, id, tr)
	if err != nil {
		tr.fail("%s: %v", id, err)
		return
	}
	defer c.nc.Close()
	topic := fmt.Sprintf("pc/m/%d", i)
	inflight := map[uint16]string{} // pid -> message, until PUBACK / PUBCOMP
	var nextPID uint16
	n := 0
	stopping := false
	for {
		select {
		case <-stop:
			stopping = true
		default:
		}
		if stopping && len(inflight) == 0 {
			_ = c.send(&wire.Disconnect{})
			return
		}
		var out []wire.Packet
		for !stopping && len(inflight) < pcWindow {
			for {
				nextPID++
				if _, busy := inflight[nextPID]; nextPID != 0 && !busy {
					break
				}
			}
			qos := byte(1 + rng.IntN(2))
			name := fmt.Sprintf("p%d-%d", i, n)
			n++
			inflight[nextPID] = name
			tr.mu.Lock()
			tr.msgs[name] = &pcMsg{qos: qos, pid: nextPID, from: id, sentAt: tr.tick()}
			tr.mu.Unlock()
			out = append(out, &wire.Publish{QoS: qos, Topic: topic, PacketID: nextPID, Payload: []byte(name)})
		}
		if len(out) > 0 {
			// Paced: the point is many cuts over varied states, not a big
			// store (each cut copies and recovers all of it).
			time.Sleep(time.Duration(len(out)) * pcPace)
			if err := c.send(out...); err != nil {
				tr.fail("%s: publish: %v", id, err)
				return
			}
		}
		p, err := c.recv(200 * time.Millisecond)
		if isTimeout(err) {
			continue
		}
		if err != nil {
			tr.fail("%s: read: %v", id, err)
			return
		}
		a, ok := p.(*wire.Ack)
		if !ok {
			tr.fail("%s: unexpected %s", id, p.Type())
			return
		}
		name, known := inflight[a.PacketID]
		if !known {
			tr.fail("%s: %s for unknown packet id %d", id, a.Kind, a.PacketID)
			return
		}
		tr.mu.Lock()
		m := tr.msgs[name]
		switch a.Kind {
		case wire.PUBACK, wire.PUBREC:
			if m.ackedAt == 0 {
				m.ackedAt = tr.tick()
			}
		}
		tr.mu.Unlock()
		switch a.Kind {
		case wire.PUBACK:
			delete(inflight, a.PacketID)
		case wire.PUBREC:
			tr.mu.Lock()
			m.pubrelAt = tr.tick()
			tr.mu.Unlock()
			if err := c.send(&wire.Ack{Kind: wire.PUBREL, PacketID: a.PacketID}); err != nil {
				tr.fail("%s: PUBREL: %v", id, err)
				return
			}
		case wire.PUBCOMP:
			delete(inflight, a.PacketID)
		}
	}
}

// pcSubscriber is a persistent subscriber. Its QoS 2 packet-id state
// outlives its connections, as a conforming client's must.
type pcSubscriber struct {
	id       string
	awaitRel map[uint16]string // QoS 2: PUBREC sent, PUBREL not yet received
}

// run keeps (re)connecting until stop: it subscribes on its first
// connection, then reads for a while and leaves, with DISCONNECT or by
// dropping the socket, and comes back.
func (s *pcSubscriber) run(addr string, rng *rand.Rand, tr *tracker, stop <-chan struct{}) {
	for first := true; ; first = false {
		select {
		case <-stop:
			return
		default:
		}
		c, _, err := pcDial(addr, s.id, tr)
		if err != nil {
			tr.fail("%s: %v", s.id, err)
			return
		}
		if first && !s.subscribe(c, tr) {
			c.nc.Close()
			return
		}
		until := time.Now().Add(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		ok := s.session(c, tr, func() bool {
			select {
			case <-stop:
				return true
			default:
				return time.Now().After(until)
			}
		})
		if rng.IntN(2) == 0 {
			_ = c.send(&wire.Disconnect{})
		}
		c.nc.Close()
		if !ok {
			return
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
	}
}

func (s *pcSubscriber) subscribe(c *pcConn, tr *tracker) bool {
	if err := c.send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "pc/m/+", QoS: 2}}}); err != nil {
		tr.fail("%s: subscribe: %v", s.id, err)
		return false
	}
	p, err := c.recv(5 * time.Second)
	if err != nil {
		tr.fail("%s: waiting for SUBACK: %v", s.id, err)
		return false
	}
	if sa, ok := p.(*wire.Suback); !ok || len(sa.ReasonCodes) != 1 || sa.ReasonCodes[0] != 2 {
		tr.fail("%s: want SUBACK granting QoS 2, got %#v", s.id, p)
		return false
	}
	tr.first(tr.subacked, s.id)
	return true
}

// drain connects and acknowledges everything until done reports true or
// nothing has arrived for quiet; false on error.
func (s *pcSubscriber) drain(addr string, tr *tracker, quiet time.Duration, done func() bool) bool {
	c, _, err := pcDial(addr, s.id, tr)
	if err != nil {
		tr.fail("%s: %v", s.id, err)
		return false
	}
	defer c.nc.Close()
	for n := 0; n%256 != 0 || !done(); n++ { // done is costly: not per packet
		p, err := c.recv(quiet)
		if isTimeout(err) {
			break
		}
		if err != nil {
			tr.fail("%s: drain: %v", s.id, err)
			return false
		}
		if !s.handle(c, p, tr) {
			return false
		}
	}
	_ = c.send(&wire.Disconnect{})
	return true
}

// session reads and acknowledges until done reports true; false on error.
func (s *pcSubscriber) session(c *pcConn, tr *tracker, done func() bool) bool {
	for !done() {
		p, err := c.recv(20 * time.Millisecond)
		if isTimeout(err) {
			continue
		}
		if err != nil {
			tr.fail("%s: read: %v", s.id, err)
			return false
		}
		if !s.handle(c, p, tr) {
			return false
		}
	}
	return true
}

func (s *pcSubscriber) handle(c *pcConn, p wire.Packet, tr *tracker) bool {
	switch p := p.(type) {
	case *wire.Publish:
		name := string(p.Payload)
		key := recvKey{s.id, name}
		if p.QoS == 2 {
			if prev, waiting := s.awaitRel[p.PacketID]; waiting {
				if prev != name {
					tr.fail("%s: packet id %d reused for %s while %s awaits PUBREL", s.id, p.PacketID, name, prev)
					return false
				}
			} else {
				tr.mu.Lock()
				_, completed := tr.pubrelRecv[key]
				tr.mu.Unlock()
				if completed {
					tr.fail("%s: QoS 2 message %s delivered again after its PUBREL", s.id, name)
					return false
				}
				s.awaitRel[p.PacketID] = name
			}
		}
		tr.mu.Lock()
		if _, seen := tr.received[key]; !seen {
			tr.received[key] = tr.tick()
		}
		tr.mu.Unlock()
		kind := wire.PUBACK
		if p.QoS == 2 {
			kind = wire.PUBREC
		}
		return c.send(&wire.Ack{Kind: kind, PacketID: p.PacketID}) == nil
	case *wire.Ack:
		if p.Kind != wire.PUBREL {
			tr.fail("%s: unexpected %s", s.id, p.Kind)
			return false
		}
		if name, ok := s.awaitRel[p.PacketID]; ok {
			delete(s.awaitRel, p.PacketID)
			tr.mu.Lock()
			k := recvKey{s.id, name}
			if _, seen := tr.pubrelRecv[k]; !seen {
				tr.pubrelRecv[k] = tr.tick()
			}
			tr.mu.Unlock()
		}
		return c.send(&wire.Ack{Kind: wire.PUBCOMP, PacketID: p.PacketID}) == nil
	default:
		tr.fail("%s: unexpected %s", s.id, p.Type())
		return false
	}
}

// runRetainer sets and clears retained values, one publish at a time.
func runRetainer(addr string, rng *rand.Rand, tr *tracker, stop <-chan struct{}) {
	const id = "pc-retainer"
	c, _, err := pcDial(addr, id, tr)
	if err != nil {
		tr.fail("%s: %v", id, err)
		return
	}
	defer c.nc.Close()
	seqs := map[string]int{}
	for pid := uint16(1); ; pid = pid%60000 + 1 {
		select {
		case <-stop:
			_ = c.send(&wire.Disconnect{})
			return
		default:
		}
		topic := fmt.Sprintf("pc/r/%d", rng.IntN(4))
		seqs[topic]++
		rp := &pcRetained{topic: topic, seq: seqs[topic], empty: rng.IntN(6) == 0}
		payload := []byte(fmt.Sprintf("%s#%d", topic, rp.seq))
		if rp.empty {
			payload = nil
		}
		tr.mu.Lock()
		rp.sentAt = tr.tick()
		tr.retained[topic] = append(tr.retained[topic], rp)
		tr.mu.Unlock()
		time.Sleep(time.Millisecond)
		if err := c.send(&wire.Publish{QoS: 1, Retain: true, Topic: topic, PacketID: pid, Payload: payload}); err != nil {
			tr.fail("%s: publish: %v", id, err)
			return
		}
		p, err := c.recv(10 * time.Second)
		if err != nil {
			tr.fail("%s: waiting for PUBACK: %v", id, err)
			return
		}
		if a, ok := p.(*wire.Ack); !ok || a.Kind != wire.PUBACK || a.PacketID != pid {
			tr.fail("%s: want PUBACK %d, got %#v", id, pid, p)
			return
		}
		tr.mu.Lock()
		rp.ackedAt = tr.tick()
		tr.mu.Unlock()
	}
}
