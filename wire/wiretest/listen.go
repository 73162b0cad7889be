package wiretest

import (
	"fmt"
	"math/rand/v2"
	"net"
)

// ListenLowPort listens on a loopback port below Linux's ephemeral range
// (32768 on), for a test broker that restarts on the port it had. A port
// from port 0 is an ephemeral one: while the broker is down, another test's
// outgoing connection can take it as its local port, and the restart's
// bind fails.
func ListenLowPort() (net.Listener, error) {
	var err error
	for range 200 {
		var l net.Listener
		if l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))); err == nil {
			return l, nil
		}
	}
	return nil, fmt.Errorf("wiretest: no free loopback port below 32000: %w", err)
}
