package bench

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/cairn-mqtt/cairn/wire"
)

func TestAppendPublishMatchesWire(t *testing.T) {
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		for _, qos := range []byte{0, 1, 2} {
			for _, size := range []int{0, 24, 100, 200, 20_000, 3_000_000} {
				payload := bytes.Repeat([]byte{'x'}, size)
				p := &wire.Publish{QoS: qos, Topic: "bench/fanin/7", Payload: payload}
				if qos > 0 {
					p.PacketID = 0xBEEF
				}
				want, err := wire.AppendPacket(nil, p, v)
				if err != nil {
					t.Fatal(err)
				}
				got := appendPublish(nil, v, p.Topic, qos, p.PacketID, false, payload)
				if !bytes.Equal(got, want) {
					t.Fatalf("v%d qos %d size %d: appendPublish differs from wire.AppendPacket", v, qos, size)
				}
				// And it parses back.
				f := newFrameReader(bytes.NewReader(got), 64)
				hdr, body, whole, err := f.next()
				if err != nil || !bytes.Equal(whole, got) {
					t.Fatalf("v%d qos %d size %d: next: %v", v, qos, size, err)
				}
				pv, err := parsePublish(hdr, body, v)
				if err != nil || pv.QoS != qos || pv.PID != p.PacketID || string(pv.Topic) != p.Topic || !bytes.Equal(pv.Payload, payload) {
					t.Fatalf("v%d qos %d size %d: parsed %+v, %v", v, qos, size, pv, err)
				}
			}
		}
	}
}

func TestAppendAckMatchesWire(t *testing.T) {
	for _, v := range []wire.Version{wire.V311, wire.V5} {
		for _, k := range []wire.PacketType{wire.PUBACK, wire.PUBREC, wire.PUBREL, wire.PUBCOMP} {
			want, err := wire.AppendPacket(nil, &wire.Ack{Kind: k, PacketID: 513}, v)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendAck(nil, k, 513); !bytes.Equal(got, want) {
				t.Errorf("v%d %v: % x, want % x", v, k, got, want)
			}
		}
	}
}

func TestParseWirePublishWithProperties(t *testing.T) {
	expiry := uint32(60)
	p := &wire.Publish{QoS: 1, PacketID: 9, Topic: "a/b", Payload: []byte("hello"), Dup: true, Retain: true,
		Props: &wire.Properties{MessageExpiry: &expiry, ContentType: new("text/plain"), SubscriptionIDs: []uint32{7}}}
	b, err := wire.AppendPacket(nil, p, wire.V5)
	if err != nil {
		t.Fatal(err)
	}
	f := newFrameReader(bytes.NewReader(b), 4096)
	hdr, body, _, err := f.next()
	if err != nil {
		t.Fatal(err)
	}
	pv, err := parsePublish(hdr, body, wire.V5)
	if err != nil || string(pv.Payload) != "hello" || string(pv.Topic) != "a/b" || !pv.Dup || !pv.Retain || pv.PID != 9 {
		t.Fatalf("parsed %+v, %v", pv, err)
	}
	// A 5.0 PUBACK with a reason code and properties.
	ack, err := wire.AppendPacket(nil, &wire.Ack{Kind: wire.PUBACK, PacketID: 4, ReasonCode: wire.NoMatchingSubscribers,
		Props: &wire.Properties{ReasonString: "nobody"}}, wire.V5)
	if err != nil {
		t.Fatal(err)
	}
	pid, code, err := parseAck(ack[2:])
	if err != nil || pid != 4 || code != byte(wire.NoMatchingSubscribers) {
		t.Fatalf("parseAck: %d %x %v", pid, code, err)
	}
}

func TestFrameReaderStream(t *testing.T) {
	// Many packets of mixed sizes, delivered one byte per read, through a
	// buffer smaller than some of them.
	var stream []byte
	var want [][]byte
	for i := range 50 {
		p := appendPublish(nil, wire.V311, "t", 1, uint16(i+1), false, bytes.Repeat([]byte{byte(i)}, i*13))
		want = append(want, p)
		stream = append(stream, p...)
	}
	idles := 0
	f := newFrameReader(iotest.OneByteReader(bytes.NewReader(stream)), 32)
	f.idle = func() error { idles++; return nil }
	for i, w := range want {
		_, _, whole, err := f.next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !bytes.Equal(whole, w) {
			t.Fatalf("packet %d differs", i)
		}
	}
	if _, _, _, err := f.next(); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
	if idles == 0 {
		t.Error("idle never ran")
	}
	// A stream cut inside a packet.
	f = newFrameReader(bytes.NewReader(stream[:len(want[0])+3]), 64)
	if _, _, _, err := f.next(); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := f.next(); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut stream: %v, want io.ErrUnexpectedEOF", err)
	}
	// A remaining length longer than four bytes.
	f = newFrameReader(strings.NewReader("\x30\xff\xff\xff\xff\x01"), 64)
	if _, _, _, err := f.next(); !errors.Is(err, errFrame) {
		t.Fatalf("bad varint: %v", err)
	}
}

func TestStampAndSeqSet(t *testing.T) {
	b := make([]byte, stampLen+3)
	putStamp(b, 7, 3, 1<<40, -5)
	run, pub, seq, at, ok := readStamp(b)
	if !ok || run != 7 || pub != 3 || seq != 1<<40 || at != -5 {
		t.Fatalf("readStamp: %d %d %d %d %v", run, pub, seq, at, ok)
	}
	if _, _, _, _, ok := readStamp(b[:stampLen-1]); ok {
		t.Fatal("short payload read as a stamp")
	}
	var got, want seqSet
	for i := uint64(0); i < 1000; i++ {
		want.add(i)
		if i%7 != 0 {
			got.add(i)
		}
	}
	if got.add(1) || !got.has(1) || got.has(7) {
		t.Fatal("add/has")
	}
	if n := got.missing(&want); n != 143 {
		t.Fatalf("missing = %d, want 143", n)
	}
	if got.add(1 << 40) {
		t.Fatal("absurd sequence accepted")
	}
}
