package listen_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/recovery"
	"github.com/cairn-mqtt/cairn/store"
)

// TestWSBrokerPacketTooLarge: through the broker, a packet over the maximum
// packet size ends a WebSocket connection with close status 1009 (message
// too big), after the broker's DISCONNECT 0x95 for a 5.0 client; the
// limiter counts the connection once.
func TestWSBrokerPacketTooLarge(t *testing.T) {
	st, err := store.Open(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := engine.New(st, engine.Options{MaxPacketSize: 1000})
	if _, err := recovery.Restore(st, b); err != nil {
		t.Fatal(err)
	}
	ws, err := listen.ListenWS("127.0.0.1:0", listen.WSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { _ = b.Serve(ws); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		ws.Close()
		<-served
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	for _, tc := range []struct {
		name    string
		connect string
		publish [][]byte // frame payloads: the header of a 1,228,811-byte PUBLISH, in pieces
		wantMsg byte     // first byte of the message before the close, 0: none
	}{
		{"5.0", "\x10\x0f\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x02c5", [][]byte{[]byte("\x30\x87\x80\x4b")}, 0xe0},
		{"3.1.1", "\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02c4", [][]byte{[]byte("\x30\x87"), []byte("\x80\x4b")}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for deadline := time.Now().Add(5 * time.Second); b.ConnLimits().Active != 0; { // the last subtest's socket
				if time.Now().After(deadline) {
					t.Fatalf("limiter %+v: a connection still counted", b.ConnLimits())
				}
				time.Sleep(5 * time.Millisecond)
			}
			c, br := upgrade(t, ws.Addr().String())
			send(t, c, 0x82, []byte(tc.connect))
			if op, p := readFrame(t, br); op != 0x82 || p[0] != 0x20 {
				t.Fatalf("want CONNACK, got %#x %q", op, p)
			}
			if n := b.ConnLimits().Active; n != 1 {
				t.Fatalf("%d connections counted, want 1", n)
			}
			for i, p := range tc.publish {
				op := byte(0x00)
				if i == 0 {
					op = 0x02
				}
				if i == len(tc.publish)-1 {
					op |= 0x80
				}
				send(t, c, op, p)
			}
			op, p := readFrame(t, br)
			if tc.wantMsg != 0 {
				if op != 0x82 || p[0] != tc.wantMsg || len(p) < 3 || p[2] != 0x95 {
					t.Fatalf("want DISCONNECT 0x95, got %#x %q", op, p)
				}
				op, p = readFrame(t, br)
			}
			if op != 0x88 || len(p) < 2 || binary.BigEndian.Uint16(p) != 1009 {
				t.Fatalf("want close 1009, got %#x %q", op, p)
			}
			send(t, c, 0x88, p[:2]) // the answer
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.Copy(io.Discard, br); err != nil {
				t.Fatalf("the socket was not closed: %v", err)
			}
		})
	}
}

func upgrade(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /mqtt HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	return c, br
}

// send writes one masked client frame (payload < 126 bytes).
func send(t *testing.T, c net.Conn, b0 byte, payload []byte) {
	t.Helper()
	key := []byte{1, 2, 3, 4}
	f := append([]byte{b0, 0x80 | byte(len(payload))}, key...)
	for i, x := range payload {
		f = append(f, x^key[i%4])
	}
	if _, err := c.Write(f); err != nil {
		t.Fatal(err)
	}
}

func readFrame(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var l [2]byte
		_, _ = io.ReadFull(br, l[:])
		n = int(binary.BigEndian.Uint16(l[:]))
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatalf("reading a frame: %v", err)
	}
	return h[0], bytes.Clone(p)
}
