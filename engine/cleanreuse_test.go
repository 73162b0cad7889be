package engine_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// A clean session ends with its connection: a persistent CONNECT with the
// same client id right after the clean connection said DISCONNECT starts a
// new session (session present 0), even while the broker is still tearing
// the clean one down. (It used to resume the dying clean session.)
func TestCleanSessionNotResumedAfterClose(t *testing.T) {
	tb := startBroker(t, engine.Options{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 60 {
				id := fmt.Sprintf("cr-%d-%d", g, i)
				c := dialRaw(t, tb.addr)
				c.connect(t, id, true, 0, nil)
				c.Send(&wire.Disconnect{})
				c.Close()
				p := dialRaw(t, tb.addr)
				present := p.connect(t, id, false, 0, nil)
				p.Close()
				if present {
					t.Errorf("%s: persistent CONNECT resumed the closed clean session", id)
					return
				}
			}
		}()
	}
	wg.Wait()
}
