package engine

import "sync"

// The pipeline is how one connection keeps the durability contract without
// being held to one fsync per packet.
//
// Invariants:
//   - Every packet from the client that needs an answer or has effects on
//     other sessions becomes a step, appended in arrival order.
//   - A step becomes ready when the store reports its commit complete (synced,
//     for a durable commit) or at once when it commits nothing.
//   - Steps run (send their acknowledgement, deliver to subscribers) strictly
//     in arrival order, and only once ready: an ack never precedes the fsync
//     of what it acknowledges, and acks leave in the order MQTT requires.
//   - The reader keeps reading while earlier steps wait for their fsync, so
//     one publisher with many messages in flight shares fsyncs with itself
//     and with every other connection (group commit).
//   - At most max steps wait, and while the messages of waiting steps hold
//     more than maxBytes (at least one step is always let in) the reader
//     blocks too (back-pressure instead of unbounded memory).
type pipeline struct {
	mu      sync.Mutex
	space   *sync.Cond
	q       []*step
	running bool
	closed  bool
	max     int
	bytes   int // of the waiting steps' messages
	maxB    int // 0: no byte bound
}

type step struct {
	size  int
	ready bool
	err   error
	then  func(err error)
}

func newPipeline(max, maxBytes int) *pipeline {
	p := &pipeline{max: max, maxB: maxBytes}
	p.space = sync.NewCond(&p.mu)
	return p
}

// add appends a step, waiting while the pipeline is full. It returns false
// if the pipeline was closed.
func (p *pipeline) add(then func(error)) *step { return p.addSized(0, then) }

// addSized is add for a step holding a message of size bytes.
func (p *pipeline) addSized(size int, then func(error)) *step {
	s := &step{then: then, size: size}
	p.mu.Lock()
	for (len(p.q) >= p.max || p.maxB > 0 && p.bytes > 0 && p.bytes+size > p.maxB) && !p.closed {
		p.space.Wait()
	}
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.q = append(p.q, s)
	p.bytes += size
	p.mu.Unlock()
	return s
}

// complete marks s ready and runs every ready step at the head, in order.
// Whichever goroutine finds the pipeline idle runs the steps; others just
// mark theirs ready and leave.
func (p *pipeline) complete(s *step, err error) {
	p.mu.Lock()
	s.ready, s.err = true, err
	if p.running {
		p.mu.Unlock()
		return
	}
	p.running = true
	for len(p.q) > 0 && p.q[0].ready {
		head := p.q[0]
		p.q[0] = nil
		p.q = p.q[1:]
		p.bytes -= head.size
		if len(p.q) == 0 {
			p.q = p.q[:0:0]
		}
		p.space.Signal()
		p.mu.Unlock()
		head.then(head.err)
		p.mu.Lock()
	}
	p.running = false
	p.mu.Unlock()
}

// close wakes a reader blocked in add. Steps already added still complete.
func (p *pipeline) close() {
	p.mu.Lock()
	p.closed = true
	p.space.Broadcast()
	p.mu.Unlock()
}
