package engine

import (
	"sync"

	"github.com/cairn-mqtt/cairn/store"
)

// Per-read commit batching: the reader gathers the commits of every packet
// it finds in one read buffer — PUBLISH (the message, its queue entries, the
// inbound QoS 2 packet id), PUBREL, the PUBREC state of a QoS 2 delivery and
// the acknowledgements of deliveries — into one store commit, made when the
// buffer runs dry. A client that writes 16 publishes at once costs one
// Pebble batch, one WAL record and one fsync round instead of 16 of each,
// and its acknowledgements leave in one write.
//
// Invariants:
//   - Commit order is arrival order: the batch keeps its packets' events in
//     order, and the reader flushes it before handling any packet whose
//     handler commits on its own (SUBSCRIBE, UNSUBSCRIBE, DISCONNECT, AUTH,
//     ...) and before the connection is torn down.
//   - A packet's completion callback runs only after the whole batch's
//     commit completes, synced if any part of it is durable: never earlier
//     than its own commit would have (the durability contract is unchanged;
//     a non-durable part may simply ride on the fsync).
//   - The reader never blocks while it holds an uncommitted batch: it
//     flushes when its read buffer is empty (before a read that may wait)
//     and before it waits for room in a full pipeline (pipeline.onWait), so
//     no step can wait for a commit that only its own reader could make.
//   - Bounded: at most maxBatchEvents events wait in a batch.

// maxBatchEvents bounds the events gathered into one commit.
const maxBatchEvents = 512

// commitBatch is the reader's uncommitted batch.
type commitBatch struct {
	evs     []*store.Event
	durable bool
	dones   []func(error)
	// acks holds the acknowledgement events by value (stageAck): one
	// allocation per batch instead of one per delivery. The store keeps no
	// reference to an event once Commit returns, so the slab goes back to
	// ackSlabs then; an idle connection holds none.
	acks *[]store.Event
	// lastAck is the EvAcked just staged, if nothing was staged after it:
	// the next ack of the same client joins it (Event.QSeqs), one logged
	// event for all the acks of a read.
	lastAck *store.Event
}

var ackSlabs = sync.Pool{New: func() any { s := make([]store.Event, 0, 64); return &s }}

// stageAck adds a delivery's non-durable removal event (EvAcked, EvDropped).
func (c *conn) stageAck(ev store.Event) {
	bt := &c.batch
	if l := bt.lastAck; l != nil && ev.Kind == store.EvAcked && l.Client == ev.Client {
		l.QSeqs = append(l.QSeqs, ev.QSeq)
		return
	}
	if bt.acks == nil {
		bt.acks = ackSlabs.Get().(*[]store.Event)
	}
	s := *bt.acks
	if len(s) == cap(s) {
		// A full slab: the events already staged keep pointing into it, so
		// start another rather than grow this one.
		c.flushBatch()
		bt.acks = ackSlabs.Get().(*[]store.Event)
		s = *bt.acks
	}
	s = append(s, ev)
	*bt.acks = s
	c.stageOne(&s[len(s)-1], false, nil)
	if ev.Kind == store.EvAcked && len(bt.evs) > 0 {
		bt.lastAck = &s[len(s)-1]
	}
}

// stage adds a packet's events to the batch; done (may be nil) runs when
// they are committed (durable if durable), in order with the others. With no
// events done runs at once, as Broker.commit does.
func (c *conn) stage(evs []*store.Event, durable bool, done func(error)) {
	c.batch.lastAck = nil
	if len(evs) == 0 {
		if done != nil {
			done(nil)
		}
		return
	}
	bt := &c.batch
	// While the store refuses growth (storefull.go) every packet is
	// committed alone: a refused publish must not take the acknowledgements
	// batched with it down too, and its refusal (which gives the 5.0
	// receive-maximum quota back) comes before the next packet is handled.
	alone := c.b.store.SpaceLow()
	if alone {
		c.flushBatch()
	}
	bt.evs = append(bt.evs, evs...)
	bt.durable = bt.durable || durable
	if done != nil {
		bt.dones = append(bt.dones, done)
	}
	if alone || len(bt.evs) >= maxBatchEvents {
		c.flushBatch()
	}
}

// stageOne adds a single event (the acknowledgement path).
func (c *conn) stageOne(ev *store.Event, durable bool, done func(error)) {
	bt := &c.batch
	bt.lastAck = nil
	bt.evs = append(bt.evs, ev)
	bt.durable = bt.durable || durable
	if done != nil {
		bt.dones = append(bt.dones, done)
	}
	if len(bt.evs) >= maxBatchEvents {
		c.flushBatch()
	}
}

// flushBatch commits the batch. A commit the store refuses fails every
// packet of the batch, as it would have failed each alone.
func (c *conn) flushBatch() {
	bt := &c.batch
	if len(bt.evs) == 0 {
		return
	}
	var done func(error)
	switch dones := bt.dones; len(dones) {
	case 0:
	case 1:
		done = dones[0]
	default:
		done = func(err error) {
			for _, d := range dones {
				d(err)
			}
		}
	}
	err := c.b.store.Commit(bt.evs, bt.durable, done)
	clear(bt.evs)
	bt.evs, bt.durable, bt.dones = bt.evs[:0], false, nil
	bt.lastAck = nil
	if bt.acks != nil {
		clear(*bt.acks)
		*bt.acks = (*bt.acks)[:0]
		ackSlabs.Put(bt.acks)
		bt.acks = nil
	}
	if err != nil {
		if !isNoSpace(err) { // a refusal, not a failure (storefull.go)
			c.b.stats.CommitFailures.Add(1)
			c.log.Error("store commit failed", "err", err)
		}
		if done != nil {
			done(err)
		}
	}
}
