package wire_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// TestGolden checks every golden packet both ways: the raw bytes decode to
// the struct (with Decode and with a Reader), and the struct encodes to the
// raw bytes, with Size agreeing.
func TestGolden(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range wiretest.Golden {
		t.Run(g.Name, func(t *testing.T) {
			if seen[g.Name] {
				t.Fatalf("duplicate golden name")
			}
			seen[g.Name] = true
			p, n, err := wire.Decode(g.Raw, g.Version)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(g.Raw) {
				t.Errorf("Decode consumed %d of %d bytes", n, len(g.Raw))
			}
			if !reflect.DeepEqual(p, g.Packet) {
				t.Errorf("Decode:\n got %s\nwant %s", dump(p), dump(g.Packet))
			}
			rp, err := wire.NewReader(bytes.NewReader(g.Raw), 0).ReadPacket(g.Version)
			if err != nil || !reflect.DeepEqual(rp, g.Packet) {
				t.Errorf("ReadPacket: %v\n got %s", err, dump(rp))
			}
			b, err := wire.AppendPacket([]byte("prefix"), g.Packet, g.Version)
			if err != nil {
				t.Fatalf("AppendPacket: %v", err)
			}
			if !bytes.Equal(b[6:], g.Raw) || string(b[:6]) != "prefix" {
				t.Errorf("AppendPacket:\n got % x\nwant % x", b[6:], g.Raw)
			}
			if s := wire.Size(g.Packet, g.Version); s != len(g.Raw) {
				t.Errorf("Size = %d, want %d", s, len(g.Raw))
			}
		})
	}
}

// TestGoldenCoverage checks that the golden table covers every packet type
// in every version (AUTH in 5.0 only).
func TestGoldenCoverage(t *testing.T) {
	have := map[wire.Version]map[wire.PacketType]bool{}
	for _, g := range wiretest.Golden {
		if have[g.Version] == nil {
			have[g.Version] = map[wire.PacketType]bool{}
		}
		have[g.Version][g.Packet.Type()] = true
	}
	for _, v := range []wire.Version{wire.V31, wire.V311, wire.V5} {
		for pt := wire.CONNECT; pt <= wire.AUTH; pt++ {
			if pt == wire.AUTH && v != wire.V5 {
				continue
			}
			if !have[v][pt] {
				t.Errorf("no golden %s packet for %s", pt, v)
			}
		}
	}
	if g := wiretest.ByName("5.0/AUTH"); g.Packet.Type() != wire.AUTH {
		t.Errorf("ByName returned %s", g.Name)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("ByName of an unknown name did not panic")
		}
	}()
	wiretest.ByName("no such packet")
}

// TestMalformed checks that every malformed input fails with its reason
// code, from a slice and from a stream, and that a stream of a golden packet
// followed by the malformed one yields the golden packet first.
func TestMalformed(t *testing.T) {
	for _, m := range wiretest.Malformed {
		t.Run(m.Name, func(t *testing.T) {
			p, _, err := wire.Decode(m.Raw, m.Version)
			checkCode(t, "Decode", p, err, m.Code)
			r := wire.NewReader(bytes.NewReader(m.Raw), 0)
			p, err = r.ReadPacket(m.Version)
			checkCode(t, "ReadPacket", p, err, m.Code)
			if b := wiretest.BadByName(m.Name); b.Name != m.Name {
				t.Errorf("BadByName returned %q", b.Name)
			}
		})
	}
}

func checkCode(t *testing.T, what string, p wire.Packet, err error, code wire.ReasonCode) {
	t.Helper()
	we := wire.AsError(err)
	if we == nil {
		t.Fatalf("%s: got packet %s, error %v; want *Error with code 0x%02X", what, dump(p), err, byte(code))
	}
	if we.Code != code {
		t.Errorf("%s: code 0x%02X (%v), want 0x%02X", what, byte(we.Code), err, byte(code))
	}
	if we.Error() == "" || !errors.As(err, new(*wire.Error)) {
		t.Errorf("%s: bad error %v", what, err)
	}
}
