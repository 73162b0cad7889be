package engine

import (
	"container/heap"
	"sync"
	"time"
)

// deadlines is the timer of offline sessions: when each one's next deadline
// (session expiry or delayed will, whichever is first) falls. One runtime
// timer serves all of them, set to the earliest; when it fires, fire is
// called with the ids whose deadline has come (at most dueBatch at a time).
//
// Invariants:
//   - At most one entry per client; set replaces it, at == 0 removes it.
//   - An entry is only a reminder: fire re-reads the session and does
//     nothing for one that reconnected, ended or moved its deadline, and the
//     code that moves a deadline calls set again. A stale entry therefore
//     costs one wasted look-up, never a wrong expiry.
//   - The timer is armed only between start and stop. After stop returns no
//     fire call is running and none will start, so nothing touches the store
//     after Broker.Shutdown.
//   - Times are unix nanoseconds of the broker's clock (Options.Now).
type deadlines struct {
	now  func() time.Time
	fire func(ids []string, now time.Time)

	mu      sync.Mutex
	h       deadlineHeap
	timer   *time.Timer
	timerAt int64 // when the timer is set to fire; 0: not set
	started bool
	stopped bool
	running sync.WaitGroup
}

// dueBatch bounds the ids handed to one fire call.
const dueBatch = 256

type deadline struct {
	client string
	at     int64
	i      int // index in the heap
}

type deadlineHeap struct {
	items []*deadline
	by    map[string]*deadline
}

func (h *deadlineHeap) Len() int           { return len(h.items) }
func (h *deadlineHeap) Less(i, j int) bool { return h.items[i].at < h.items[j].at }
func (h *deadlineHeap) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].i, h.items[j].i = i, j
}
func (h *deadlineHeap) Push(x any) {
	d := x.(*deadline)
	d.i = len(h.items)
	h.items = append(h.items, d)
}
func (h *deadlineHeap) Pop() any {
	n := len(h.items) - 1
	d := h.items[n]
	h.items[n] = nil
	h.items = h.items[:n]
	return d
}

func newDeadlines(now func() time.Time, fire func([]string, time.Time)) *deadlines {
	return &deadlines{now: now, fire: fire, h: deadlineHeap{by: make(map[string]*deadline)}}
}

// set makes at the deadline of client (0: none).
func (d *deadlines) set(client string, at int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.h.by[client]; e != nil {
		if at == 0 {
			heap.Remove(&d.h, e.i)
			delete(d.h.by, client)
		} else {
			e.at = at
			heap.Fix(&d.h, e.i)
		}
	} else if at != 0 {
		e := &deadline{client: client, at: at}
		d.h.by[client] = e
		heap.Push(&d.h, e)
	}
	d.arm()
}

// start arms the timer (after recovery: deadlines already due are settled by
// the caller first).
func (d *deadlines) start() {
	d.mu.Lock()
	d.started = true
	d.arm()
	d.mu.Unlock()
}

// stop disarms the timer and waits for a running fire call to return.
func (d *deadlines) stop() {
	d.mu.Lock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.mu.Unlock()
	d.running.Wait()
}

// arm sets the timer to the earliest deadline. Caller holds mu.
func (d *deadlines) arm() {
	if !d.started || d.stopped || d.h.Len() == 0 {
		return
	}
	at := d.h.items[0].at
	if d.timerAt != 0 && d.timerAt <= at {
		return // already set to fire no later; it re-arms when it fires
	}
	wait := time.Duration(at - d.now().UnixNano())
	if wait < 0 {
		wait = 0
	}
	d.timerAt = at
	if d.timer == nil {
		d.timer = time.AfterFunc(wait, d.run)
	} else {
		d.timer.Reset(wait)
	}
}

// run is the timer's function.
func (d *deadlines) run() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.running.Add(1)
	d.timerAt = 0
	d.mu.Unlock()
	defer d.running.Done()
	for {
		now := d.now()
		ids := d.due(now.UnixNano())
		if len(ids) == 0 {
			break
		}
		d.fire(ids, now)
	}
	d.mu.Lock()
	d.arm()
	d.mu.Unlock()
}

// due removes and returns up to dueBatch clients whose deadline is at or
// before now.
func (d *deadlines) due(now int64) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return nil
	}
	var ids []string
	for d.h.Len() > 0 && d.h.items[0].at <= now && len(ids) < dueBatch {
		e := heap.Pop(&d.h).(*deadline)
		delete(d.h.by, e.client)
		ids = append(ids, e.client)
	}
	return ids
}
