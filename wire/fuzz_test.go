package wire_test

// Fuzz targets. Each checks that decoding never panics, that every error is
// an *wire.Error (or io.EOF / io.ErrUnexpectedEOF where the input ends), and
// the round-trip invariant: whatever decodes re-encodes (with Size agreeing)
// to bytes that decode to an equal packet. Seeds are the golden and
// malformed tables plus the corpus under testdata/fuzz/<FuzzName>/.

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

func fuzzVersion(b byte) wire.Version { return versions[int(b)%len(versions)] }

func versionByte(v wire.Version) byte {
	for i, x := range versions {
		if x == v {
			return byte(i)
		}
	}
	return 0
}

// checkDecodeErr fails unless err is an *Error or, when eofOK, an EOF.
func checkDecodeErr(t *testing.T, err error, eofOK bool) {
	t.Helper()
	if wire.AsError(err) != nil {
		return
	}
	if eofOK && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return
	}
	t.Fatalf("unexpected error type %T: %v", err, err)
}

// checkRoundTrip re-encodes a decoded packet and decodes it again.
func checkRoundTrip(t *testing.T, p wire.Packet, v wire.Version) {
	t.Helper()
	if c, ok := p.(*wire.Connect); ok {
		v = c.Version
	}
	b, err := wire.AppendPacket(nil, p, v)
	if err != nil {
		t.Fatalf("decoded %s does not encode: %v", dump(p), err)
	}
	if s := wire.Size(p, v); s != len(b) {
		t.Fatalf("Size = %d, encoded %d bytes", s, len(b))
	}
	q, n, err := wire.Decode(b, v)
	if err != nil || n != len(b) {
		t.Fatalf("re-encoded % x does not decode: %v", b, err)
	}
	if !reflect.DeepEqual(p, q) {
		t.Fatalf("round trip:\n got %s\nwant %s", dump(q), dump(p))
	}
}

// splitPacket returns the first byte and the body of a complete packet.
func splitPacket(raw []byte) (byte, []byte) {
	i := 1
	for i < len(raw) && raw[i]&0x80 != 0 {
		i++
	}
	return raw[0], raw[i+1:]
}

func withHeader(first byte, body []byte) []byte {
	raw := []byte{first}
	n := len(body)
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		raw = append(raw, c)
		if n == 0 {
			break
		}
	}
	return append(raw, body...)
}

// FuzzReadPacket feeds arbitrary bytes to a Reader (buffer size and version
// chosen by the fuzzer) and checks every packet it yields, and that Decode
// agrees with the Reader on the first packet.
func FuzzReadPacket(f *testing.F) {
	for _, g := range wiretest.Golden {
		f.Add(g.Raw, versionByte(g.Version))
		f.Add(append(append([]byte{}, g.Raw...), g.Raw...), versionByte(g.Version)|0x10)
	}
	for _, m := range wiretest.Malformed {
		f.Add(m.Raw, versionByte(m.Version))
	}
	f.Fuzz(func(t *testing.T, data []byte, sel byte) {
		v := fuzzVersion(sel & 0x0F)
		size := [...]int{4096, 16, 40, 256}[sel>>4&3]
		r := wire.NewReaderSize(bytes.NewReader(data), 0, size)
		first, _, firstErr := wire.Decode(data, v)
		for i := 0; ; i++ {
			p, err := r.ReadPacket(v)
			if i == 0 {
				if (err == nil) != (firstErr == nil) || (err == nil && !reflect.DeepEqual(p, first)) {
					t.Fatalf("Reader: %s, %v; Decode: %s, %v", dump(p), err, dump(first), firstErr)
				}
				if we, fe := wire.AsError(err), wire.AsError(firstErr); we != nil && (fe == nil || we.Code != fe.Code) {
					t.Fatalf("Reader error %v, Decode error %v", err, firstErr)
				}
			}
			if err != nil {
				checkDecodeErr(t, err, true)
				if err == io.EOF && r.Buffered() != 0 {
					t.Fatalf("EOF with %d bytes buffered", r.Buffered())
				}
				return
			}
			checkRoundTrip(t, p, v)
		}
	})
}

// fuzzBodies registers a target decoding fuzzed bodies behind the given
// first bytes (chosen by the fuzzer), seeded with the golden and malformed
// packets that start with one of them.
func fuzzBodies(f *testing.F, firsts ...byte) {
	seed := func(raw []byte, v wire.Version) {
		if len(raw) < 2 {
			return
		}
		first, body := splitPacket(raw)
		for i, b := range firsts {
			if b == first {
				f.Add(byte(i), body, versionByte(v))
			}
		}
	}
	for _, g := range wiretest.Golden {
		seed(g.Raw, g.Version)
	}
	for _, m := range wiretest.Malformed {
		seed(m.Raw, m.Version)
	}
	f.Fuzz(func(t *testing.T, sel byte, body []byte, vb byte) {
		v := fuzzVersion(vb)
		raw := withHeader(firsts[int(sel)%len(firsts)], body)
		p, n, err := wire.Decode(raw, v)
		if err != nil {
			checkDecodeErr(t, err, false)
			return
		}
		if n != len(raw) {
			t.Fatalf("consumed %d of %d bytes", n, len(raw))
		}
		checkRoundTrip(t, p, v)
	})
}

func FuzzConnect(f *testing.F) { fuzzBodies(f, 0x10) }
func FuzzConnack(f *testing.F) { fuzzBodies(f, 0x20) }

func FuzzPublish(f *testing.F) {
	var firsts []byte
	for b := byte(0x30); b <= 0x3F; b++ {
		firsts = append(firsts, b)
	}
	fuzzBodies(f, firsts...)
}

func FuzzAck(f *testing.F)         { fuzzBodies(f, 0x40, 0x50, 0x62, 0x70) }
func FuzzSubscribe(f *testing.F)   { fuzzBodies(f, 0x82) }
func FuzzSuback(f *testing.F)      { fuzzBodies(f, 0x90) }
func FuzzUnsubscribe(f *testing.F) { fuzzBodies(f, 0xA2) }
func FuzzUnsuback(f *testing.F)    { fuzzBodies(f, 0xB0) }
func FuzzDisconnect(f *testing.F)  { fuzzBodies(f, 0xE0, 0xC0, 0xD0) }
func FuzzAuth(f *testing.F)        { fuzzBodies(f, 0xF0) }

// FuzzProperties checks DecodeProperties against AppendProperties.
func FuzzProperties(f *testing.F) {
	for _, g := range wiretest.Golden {
		if g.Version != wire.V5 {
			continue
		}
		p, _, err := wire.Decode(g.Raw, g.Version)
		if err != nil {
			f.Fatal(err)
		}
		for _, props := range propsOf(p) {
			f.Add(wire.AppendProperties(nil, props))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := wire.DecodeProperties(b)
		if err != nil {
			checkDecodeErr(t, err, false)
			return
		}
		enc := wire.AppendProperties(nil, p)
		q, err := wire.DecodeProperties(enc)
		if err != nil || !reflect.DeepEqual(p, q) {
			t.Fatalf("properties round trip: %v\n got %+v\nwant %+v", err, q, p)
		}
	})
}

// propsOf returns the property blocks a packet carries.
func propsOf(p wire.Packet) []*wire.Properties {
	switch x := p.(type) {
	case *wire.Connect:
		if x.Will != nil {
			return []*wire.Properties{x.Props, x.Will.Props}
		}
		return []*wire.Properties{x.Props}
	case *wire.Connack:
		return []*wire.Properties{x.Props}
	case *wire.Publish:
		return []*wire.Properties{x.Props}
	case *wire.Ack:
		return []*wire.Properties{x.Props}
	case *wire.Subscribe:
		return []*wire.Properties{x.Props}
	case *wire.Suback:
		return []*wire.Properties{x.Props}
	case *wire.Unsubscribe:
		return []*wire.Properties{x.Props}
	case *wire.Unsuback:
		return []*wire.Properties{x.Props}
	case *wire.Disconnect:
		return []*wire.Properties{x.Props}
	case *wire.Auth:
		return []*wire.Properties{x.Props}
	}
	return nil
}
