package engine

import (
	"fmt"

	"github.com/cairn-mqtt/cairn/wire"
)

// What the broker does when its store fails (a WAL write or fsync error,
// store.ErrFailed): nothing it says about durability can be trusted any
// more, so it stops being a broker.
//
// Invariants:
//   - No acknowledgement follows the failure: every commit in flight
//     completes with ErrFailed (the store never retries an fsync) and its
//     connection is closed without the ack (conn.failCommit); later commits
//     are refused by the store.
//   - Once, loudly: an error log line, every listener closed (Serve returns
//     an error wrapping the store's), every connection ended with a 5.0
//     DISCONNECT 0x80 "store failure". Wills are not published (their
//     commits would fail too); they are still armed in the store, and the
//     restart publishes those of the sessions the failure cut.
//   - The process is expected to exit and be restarted by its supervisor
//     (`cairn serve` exits non-zero); recovery then brings back exactly
//     what reached the disk.

// watchStore, started by Serve, turns a store failure into the shutdown
// above. It returns when the store fails or stop is closed.
func (b *Broker) watchStore(stop <-chan struct{}) {
	select {
	case <-stop:
		return
	case <-b.store.Failed():
	}
	b.failOnce.Do(b.storeFailed)
}

func (b *Broker) storeFailed() {
	err := b.store.Err()
	b.log.Error("store failed: acknowledging nothing more, closing every listener and connection; restart the broker to recover what reached the disk", "err", err)
	b.mu.Lock()
	b.failed = err
	for l := range b.listeners {
		l.Close()
	}
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		c.disconnectWith(wire.UnspecifiedError, "store failure")
		c.closeWith(endStoreFailure)
	}
}

// storeFailure is the error Serve returns after a store failure, nil
// before one.
func (b *Broker) storeFailure() error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.failed == nil {
		return nil
	}
	return fmt.Errorf("engine: the store failed: %w", b.failed)
}
