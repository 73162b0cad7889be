package wire_test

import (
	"bytes"
	"io"
	"reflect"
	"testing"

	"pgregory.net/rapid"

	"github.com/cairn-mqtt/cairn/wire"
)

var versions = []wire.Version{wire.V31, wire.V311, wire.V5}

// TestRoundTrip: every generated valid packet encodes, Size agrees, and
// decoding (from a slice and from a stream) gives back an equal packet.
func TestRoundTrip(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				p := gen{t: rt, v: v}.packet()
				b, err := wire.AppendPacket(nil, p, v)
				if err != nil {
					rt.Fatalf("AppendPacket(%s): %v", dump(p), err)
				}
				if s := wire.Size(p, v); s != len(b) {
					rt.Fatalf("Size = %d, encoded %d bytes", s, len(b))
				}
				q, n, err := wire.Decode(b, v)
				if err != nil || n != len(b) {
					rt.Fatalf("Decode(% x) of %s: %v (n=%d)", b, dump(p), err, n)
				}
				if !reflect.DeepEqual(p, q) {
					rt.Fatalf("round trip:\n got %s\nwant %s", dump(q), dump(p))
				}
				r, err := wire.NewReaderSize(bytes.NewReader(b), 0, 16).ReadPacket(v)
				if err != nil || !reflect.DeepEqual(p, r) {
					rt.Fatalf("ReadPacket: %v\n got %s\nwant %s", err, dump(r), dump(p))
				}
			})
		})
	}
}

// TestEncodeNeverProducesRejected: for arbitrary (often invalid) packet
// structs, AppendPacket either refuses with an *Error, or its output decodes
// and re-encodes to the same bytes.
func TestEncodeNeverProducesRejected(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				p := gen{t: rt, v: v, wild: true}.packet()
				b, err := wire.AppendPacket(nil, p, v)
				if err != nil {
					if wire.AsError(err) == nil {
						rt.Fatalf("AppendPacket error %v is not an *Error", err)
					}
					if len(b) != 0 {
						rt.Fatalf("AppendPacket wrote %d bytes on error", len(b))
					}
					return
				}
				if s := wire.Size(p, v); s != len(b) {
					rt.Fatalf("Size = %d, encoded %d bytes", s, len(b))
				}
				q, _, err := wire.Decode(b, v)
				if err != nil {
					rt.Fatalf("encoded %s as % x, which does not decode: %v", dump(p), b, err)
				}
				b2, err := wire.AppendPacket(nil, q, v)
				if err != nil || !bytes.Equal(b, b2) {
					rt.Fatalf("re-encoding %s: %v\n got % x\nwant % x", dump(q), err, b2, b)
				}
			})
		})
	}
}

// TestStream decodes a stream of many generated packets through one Reader
// with a small buffer, so that packets straddle reads and the large-packet
// path is used.
func TestStream(t *testing.T) {
	for _, v := range versions {
		t.Run(v.String(), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				g := gen{t: rt, v: v}
				var want []wire.Packet
				var stream []byte
				for range rapid.IntRange(1, 8).Draw(rt, "n") {
					p := g.packet()
					if c, ok := p.(*wire.Connect); ok && c.Version != v {
						continue
					}
					var err error
					if stream, err = wire.AppendPacket(stream, p, v); err != nil {
						rt.Fatalf("AppendPacket: %v", err)
					}
					want = append(want, p)
				}
				size := rapid.IntRange(16, 64).Draw(rt, "buffer")
				chunk := rapid.IntRange(1, 50).Draw(rt, "chunk")
				r := wire.NewReaderSize(&chunkReader{b: stream, n: chunk}, 0, size)
				for i, w := range want {
					got, err := r.ReadPacket(v)
					if err != nil || !reflect.DeepEqual(got, w) {
						rt.Fatalf("packet %d: %v\n got %s\nwant %s", i, err, dump(got), dump(w))
					}
				}
				if _, err := r.ReadPacket(v); err == nil || err != io.EOF {
					rt.Fatalf("after the last packet: %v, want EOF", err)
				}
			})
		})
	}
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[n:]
	return n, nil
}
