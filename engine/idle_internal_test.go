package engine

import (
	"net"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine/listen"
)

// An idle reader behind the connection limiter (every listener of cairn
// serve) still waits on the socket without a read buffer: waitReadable
// blocks until data arrives and consumes none of it. Before the limiter's
// conn exposed the socket, waitReadable returned at once and each idle
// connection held a read buffer again (10.6 KiB RSS per idle connection
// instead of 5.8).
func TestWaitReadableThroughLimitedConn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := listen.LimitListener(l, 10, 10)
	defer ll.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	done := make(chan error, 1)
	go func() { done <- waitReadable(server) }()
	select {
	case err := <-done:
		t.Fatalf("waitReadable returned (%v) with no data: it did not wait on the socket", err)
	case <-time.After(150 * time.Millisecond):
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("waitReadable: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitReadable did not return after data arrived")
	}
	buf := make([]byte, 4)
	_ = server.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("read after the wait: %q, %v (the wait must not consume data)", buf[:n], err)
	}
}

// A wrapped connection without a socket of its own (here a pipe; in
// production a WebSocket, which buffers frames above its socket) is read
// directly: waitReadable returns at once instead of waiting on a socket
// while data may sit in a buffer above it.
func TestWaitReadableWithoutSocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	pl := &pipeListener{c: make(chan net.Conn, 1)}
	pl.c <- a
	ll := listen.LimitListener(pl, 10, 10)
	server, err := ll.Accept()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waitReadable(server) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitReadable blocked on a connection without a socket")
	}
}

type pipeListener struct{ c chan net.Conn }

func (p *pipeListener) Accept() (net.Conn, error) { return <-p.c, nil }
func (p *pipeListener) Close() error              { return nil }
func (p *pipeListener) Addr() net.Addr            { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }
