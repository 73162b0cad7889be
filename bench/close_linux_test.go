package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/wire"
)

// A connect run closes tens of thousands of connections; if the load
// generator closed first, each would hold one of its local ports in
// TIME_WAIT for a minute and slow every later connect(2) down (the kernel
// scans the ephemeral range for a free port). close waits for the broker to
// close after the DISCONNECT, so the TIME_WAIT is the broker's.
func TestCloseLeavesNoTimeWaitOnTheClient(t *testing.T) {
	fb := startFake(t, 0, func(nc net.Conn, r *wire.Reader, v wire.Version, _ *wire.Connect) error {
		p, err := r.ReadPacket(v)
		if err != nil {
			return err
		}
		if p.Type() != wire.DISCONNECT {
			return errorf("got %v, want DISCONNECT", p.Type())
		}
		return nil // startFake closes nc: the broker side closes first
	})
	c, err := dial(context.Background(), fb.addr, connOptions{ClientID: "tw", Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	local := c.nc.LocalAddr().(*net.TCPAddr).Port
	remote := c.nc.RemoteAddr().(*net.TCPAddr).Port
	c.close()
	fb.check(t)
	// The broker's side may take a moment to reach TIME_WAIT; ours must
	// never be there.
	deadline := time.Now().Add(2 * time.Second)
	for {
		mine, brokers, err := timeWaits(local, remote)
		if err != nil {
			t.Skipf("reading /proc/net/tcp: %v", err)
		}
		if mine > 0 {
			t.Fatalf("the client's port %d is in TIME_WAIT: the client closed first", local)
		}
		if brokers > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TIME_WAIT for the connection from port %d on either side", local)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// timeWaits counts the TIME_WAIT sockets in /proc/net/tcp of the
// connection between the client's port and the broker's: the client's side
// (mine) and the broker's.
func timeWaits(client, broker int) (mine, brokers int, err error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	c, b := fmt.Sprintf(":%04X", client), fmt.Sprintf(":%04X", broker)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "06" { // 06: TCP_TIME_WAIT
			continue
		}
		switch {
		case strings.HasSuffix(fields[1], c) && strings.HasSuffix(fields[2], b):
			mine++
		case strings.HasSuffix(fields[1], b) && strings.HasSuffix(fields[2], c):
			brokers++
		}
	}
	return mine, brokers, sc.Err()
}
