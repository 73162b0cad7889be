package wire_test

import (
	"testing"

	"github.com/cairn-mqtt/cairn/wire"
)

// loopReader yields its bytes over and over, as a stream of whole packets.
type loopReader struct {
	b   []byte
	off int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.b[l.off:])
		n += c
		l.off = (l.off + c) % len(l.b)
	}
	return n, nil
}

func benchPublish(v wire.Version, payload int) *wire.Publish {
	p := &wire.Publish{QoS: 1, PacketID: 42, Topic: "sensors/building-1/floor-2/temperature",
		Payload: make([]byte, payload)}
	if v == wire.V5 {
		p.Props = &wire.Properties{MessageExpiry: u32p(3600), ContentType: new("application/json"),
			User: []wire.UserProperty{{Key: "origin", Value: "gw-7"}}}
	}
	return p
}

var benchCases = []struct {
	name    string
	v       wire.Version
	payload int
}{
	{"3.1.1/256B", wire.V311, 256},
	{"5.0/256B", wire.V5, 256},
	{"3.1.1/64KiB", wire.V311, 64 << 10},
}

func BenchmarkPublishEncode(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			p := benchPublish(bc.v, bc.payload)
			buf := make([]byte, 0, wire.Size(p, bc.v))
			b.SetBytes(int64(wire.Size(p, bc.v)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = wire.AppendPacket(buf[:0], p, bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkPublishDecode(b *testing.B) {
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) {
			raw, err := wire.AppendPacket(nil, benchPublish(bc.v, bc.payload), bc.v)
			if err != nil {
				b.Fatal(err)
			}
			r := wire.NewReader(&loopReader{b: raw}, 0)
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.ReadPacket(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkMatchTopic measures the matcher on a typical wildcard filter.
func BenchmarkMatchTopic(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		wire.MatchTopic("sensors/+/floor-2/#", "sensors/building-1/floor-2/temperature")
	}
}
