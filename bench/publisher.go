package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// A publisher sends stamped messages on one connection, pipelined: up to
// window QoS 1/2 publishes are in flight, matched to their acks by packet
// id. Its goroutine fills the window, writes everything pending with one
// system call, and sleeps until the connection's reader frees a slot; by the
// time it runs again, all the acks read meanwhile have freed theirs, so the
// next write carries as many publishes as there were acks. With a fixed rate
// it sends one message per tick instead, still never more than window in
// flight. QoS 0 publishes are written 16 KiB at a time.
//
// The window is refilled as soon as a slot frees, never held back to gather
// a bigger batch: a broker that leaves Nagle's algorithm on (mosquitto by
// default) holds its next PUBACKs until the client's delayed ACK fires, so a
// client that stops sending while it waits for several acks stalls 40 ms
// each time.

// qos0FlushBytes is how much a QoS 0 publisher buffers before a write.
const qos0FlushBytes = 16 << 10

type publisher struct {
	c      *conn
	run    uint32
	idx    uint32
	topics []string // message seq goes to topics[seq % len(topics)]
	qos    byte
	window int

	mu       sync.Mutex
	payload  []byte
	slots    []slot // by packet id; len is the packet id range + 1
	nextPID  uint16
	inflight int
	seq      uint64 // the next message's sequence number
	count    uint64 // messages to send; 0 = no limit
	until    int64  // clock() after which nothing more is sent
	stopped  bool   // nothing more will be sent
	finished chan struct{}
	finOnce  sync.Once
	space    chan struct{} // a slot was freed

	sent    atomic.Int64
	acked   atomic.Int64
	refused atomic.Int64 // acks with a failure reason code (5.0)
	lastAck atomic.Int64 // clock() of the last ack

	ackedSet seqSet     // reader goroutine; read after the connection closed
	puback   *Histogram // reader goroutine; read after the connection closed
	errs     []string   // under mu
}

// slot is one packet id's in-flight publish: its send time (0 when free)
// and sequence number.
type slot struct {
	at  int64
	seq uint64
}

func newPublisher(c *conn, run, idx uint32, topic string, qos byte, window int) *publisher {
	window = min(max(window, 1), 65535)
	p := &publisher{
		c: c, run: run, idx: idx, topics: []string{topic}, qos: qos, window: window,
		slots:    make([]slot, min(65535, max(2*window, 64))+1),
		finished: make(chan struct{}),
		space:    make(chan struct{}, 1),
		puback:   NewHistogram(),
	}
	c.onAck = p.onAck
	return p
}

// onAck runs on the reader goroutine for every PUBACK and PUBCOMP (and a
// failed PUBREC).
func (p *publisher) onAck(kind wire.PacketType, pid uint16, code byte) {
	if p.qos == 0 || int(pid) >= len(p.slots) {
		return
	}
	want := wire.PUBACK
	if p.qos == 2 {
		want = wire.PUBCOMP
	}
	if kind != want && code < 0x80 {
		return
	}
	now := clock()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.slots[pid]
	if s.at == 0 {
		return // not in flight: a stray ack
	}
	if code >= 0x80 {
		p.refused.Add(1)
		if len(p.errs) < 5 {
			p.errs = append(p.errs, fmt.Sprintf("%v for message %d: reason code 0x%02X", kind, s.seq, code))
		}
	} else {
		p.ackedSet.add(s.seq)
		p.puback.Record(now - s.at)
		p.acked.Add(1)
	}
	s.at = 0
	p.inflight--
	p.lastAck.Store(now)
	select {
	case p.space <- struct{}{}:
	default:
	}
	p.checkFinishedLocked()
}

// fillLocked sends while the window has room and sending is not over.
func (p *publisher) fillLocked(now int64) {
	for p.inflight < p.window && !p.stopLocked(now) {
		p.sendLocked(now)
	}
}

// stopLocked reports (and latches) that nothing more is to be sent.
func (p *publisher) stopLocked(now int64) bool {
	if !p.stopped && (p.count > 0 && p.seq >= p.count || now >= p.until) {
		p.stopped = true
	}
	return p.stopped
}

func (p *publisher) checkFinishedLocked() {
	if p.stopped && p.inflight == 0 {
		p.finOnce.Do(func() { close(p.finished) })
	}
}

// sendLocked queues the next message (the window has room).
func (p *publisher) sendLocked(now int64) {
	var pid uint16
	if p.qos > 0 {
		pid = p.freePID()
		p.slots[pid] = slot{at: now, seq: p.seq}
		p.inflight++
	}
	putStamp(p.payload, p.run, p.idx, p.seq, now)
	p.c.queuePublish(p.topics[p.seq%uint64(len(p.topics))], p.qos, pid, p.payload)
	p.seq++
	p.sent.Store(int64(p.seq))
}

// freePID returns a packet id with no publish in flight. There is always one:
// at most window are in flight and the range is at least twice that.
func (p *publisher) freePID() uint16 {
	for {
		p.nextPID++
		if int(p.nextPID) >= len(p.slots) {
			p.nextPID = 1
		}
		if p.slots[p.nextPID].at == 0 {
			return p.nextPID
		}
	}
}

// publishOpts bound a publisher's run.
type publishOpts struct {
	count   int64     // messages to send; 0 = until the deadline
	until   time.Time // stop sending at this time
	rate    float64   // messages per second; 0 = as fast as the window allows
	payload int       // bytes, at least stampLen
}

// publish sends until count or the deadline, then waits (bounded by
// ackWait) for the acks of what it sent. It returns when done, or early if
// the connection fails or ctx ends. It runs once per publisher.
func (p *publisher) publish(ctx context.Context, o publishOpts, ackWait time.Duration) error {
	payload := make([]byte, max(o.payload, stampLen))
	for i := stampLen; i < len(payload); i++ {
		payload[i] = byte('a' + i%26)
	}
	p.mu.Lock()
	p.payload = payload
	p.count = uint64(max(o.count, 0))
	p.until = clock() + int64(time.Until(o.until))
	p.mu.Unlock()
	runCtx, cancel := context.WithDeadline(ctx, o.until)
	defer cancel()

	var err error
	if p.qos == 0 {
		err = p.publishQoS0(runCtx, o.rate)
	} else {
		err = p.publishWindowed(runCtx, o.rate)
	}
	if err != nil {
		return err
	}
	// Sending ends at the deadline even if no ack comes to notice it.
	stop := time.NewTimer(time.Until(o.until))
	defer stop.Stop()
	for {
		select {
		case <-p.finished:
			return nil
		case <-p.c.done:
			return p.c.errOr(errBrokerClosed)
		case <-ctx.Done():
			return nil
		case <-stop.C:
			p.mu.Lock()
			p.stopped = true
			p.checkFinishedLocked()
			left := p.inflight
			p.mu.Unlock()
			select {
			case <-p.finished:
				return nil
			case <-p.c.done:
				return p.c.errOr(errBrokerClosed)
			case <-ctx.Done():
				return nil
			case <-time.After(ackWait):
				return fmt.Errorf("%d of %d publishes still unacknowledged %v after sending stopped (%d at the deadline)",
					p.sent.Load()-p.acked.Load()-p.refused.Load(), p.sent.Load(), ackWait, left)
			}
		}
	}
}

// publishWindowed sends QoS 1/2 messages, as fast as the window allows or
// at a fixed rate, until sending stops or ctx ends.
func (p *publisher) publishWindowed(ctx context.Context, rate float64) error {
	start := clock()
	for {
		if rate > 0 {
			p.mu.Lock()
			due := start + int64(float64(p.seq)*1e9/rate)
			p.mu.Unlock()
			if now := clock(); due > now {
				if err := p.c.flush(); err != nil {
					return err
				}
				if !sleepCtx(ctx, time.Duration(due-now)) {
					return p.c.flush()
				}
			}
		}
		now := clock()
		p.mu.Lock()
		if p.stopLocked(now) {
			p.checkFinishedLocked()
			p.mu.Unlock()
			return p.c.flush()
		}
		if p.inflight < p.window {
			if rate > 0 {
				p.sendLocked(now)
			} else {
				p.fillLocked(now)
			}
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		if err := p.c.flush(); err != nil {
			return err
		}
		select {
		case <-p.space:
		case <-ctx.Done():
			return nil
		case <-p.c.done:
			return p.c.errOr(errBrokerClosed)
		}
	}
}

// publishQoS0 sends QoS 0 messages, paced if rate > 0.
func (p *publisher) publishQoS0(ctx context.Context, rate float64) error {
	start := clock()
	for i := 0; ; i++ {
		now := clock()
		if rate > 0 {
			if due := start + int64(float64(i)*1e9/rate); due > now {
				if err := p.c.flush(); err != nil {
					return err
				}
				if !sleepCtx(ctx, time.Duration(due-now)) {
					break
				}
				now = clock()
			}
		}
		if i&63 == 0 {
			select {
			case <-p.c.done:
				return p.c.errOr(errBrokerClosed)
			default:
			}
		}
		p.mu.Lock()
		if p.stopLocked(now) || ctx.Err() != nil {
			p.stopped = true
			p.checkFinishedLocked()
			p.mu.Unlock()
			break
		}
		p.sendLocked(now)
		p.mu.Unlock()
		if p.c.pendingLen() >= qos0FlushBytes {
			if err := p.c.flush(); err != nil {
				return err
			}
		}
	}
	return p.c.flush()
}

// sleepCtx sleeps for d unless ctx ends first; it reports whether it slept.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
