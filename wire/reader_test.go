package wire_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"

	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestReaderMaxPacketSize(t *testing.T) {
	big := &wire.Publish{Topic: "t", Payload: make([]byte, 100_000)}
	raw, err := wire.AppendPacket(nil, big, wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	// The limit is on the whole packet, fixed header included.
	for _, limit := range []uint32{uint32(len(raw)) - 1, 1000, 2} {
		cr := &countingReader{r: bytes.NewReader(raw)}
		r := wire.NewReader(cr, limit)
		_, err := r.ReadPacket(wire.V311)
		we := wire.AsError(err)
		if we == nil || we.Code != wire.PacketTooLarge || we.Packet != wire.PUBLISH {
			t.Fatalf("limit %d: %v, want PacketTooLarge", limit, err)
		}
		if cr.n > wire.DefaultReadBufferSize {
			t.Errorf("limit %d: read %d bytes of the body before refusing", limit, cr.n)
		}
	}
	r := wire.NewReader(bytes.NewReader(raw), 1)
	r.SetMaxPacketSize(uint32(len(raw)))
	p, err := r.ReadPacket(wire.V311)
	if err != nil || !reflect.DeepEqual(p, big) {
		t.Fatalf("at the limit: %v", err)
	}
	// The announced size is checked before anything is allocated for the
	// body: a header claiming the protocol maximum costs nothing.
	huge := []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}
	r = wire.NewReader(bytes.NewReader(huge), 1<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = r.ReadPacket(wire.V311)
	runtime.ReadMemStats(&after)
	if wire.AsError(err) == nil || wire.AsError(err).Code != wire.PacketTooLarge {
		t.Fatal(err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
		t.Errorf("%d bytes allocated refusing a huge packet", n)
	}
	// Without a limit, a peer announcing 256 MiB and sending 10 bytes does
	// not make the Reader allocate 256 MiB.
	r = wire.NewReader(bytes.NewReader(append(huge, make([]byte, 10)...)), 0)
	runtime.ReadMemStats(&before)
	_, err = r.ReadPacket(wire.V311)
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatal(err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("%d bytes allocated for a 10-byte body", n)
	}
}

func TestReaderEOF(t *testing.T) {
	g := wiretest.ByName("3.1.1/PUBLISH/qos1-retain").Raw
	for _, size := range []int{16, 4096} {
		// Clean end between packets.
		r := wire.NewReaderSize(bytes.NewReader(g), 0, size)
		if _, err := r.ReadPacket(wire.V311); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadPacket(wire.V311); err != io.EOF {
			t.Fatalf("size %d: %v, want io.EOF", size, err)
		}
		// Truncated at every point.
		for i := 1; i < len(g); i++ {
			r := wire.NewReaderSize(bytes.NewReader(g[:i]), 0, size)
			if _, err := r.ReadPacket(wire.V311); err != io.ErrUnexpectedEOF {
				t.Fatalf("size %d, %d bytes: %v, want io.ErrUnexpectedEOF", size, i, err)
			}
			if _, _, err := wire.Decode(g[:i], wire.V311); err != io.ErrUnexpectedEOF {
				t.Fatalf("Decode of %d bytes: %v", i, err)
			}
		}
	}
	if _, _, err := wire.Decode(nil, wire.V311); err != io.EOF {
		t.Fatalf("Decode(nil): %v", err)
	}
}

// flakyReader returns its chunks one per Read, with an error between them.
type flakyReader struct {
	chunks [][]byte
	fail   bool
}

var errTimeout = errors.New("timeout")

func (f *flakyReader) Read(p []byte) (int, error) {
	if f.fail = !f.fail; f.fail {
		return 0, errTimeout
	}
	if len(f.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, f.chunks[0])
	if f.chunks[0] = f.chunks[0][n:]; len(f.chunks[0]) == 0 {
		f.chunks = f.chunks[1:]
	}
	return n, nil
}

// TestReaderResume: a read error in the middle of a packet (a deadline, for
// instance) loses nothing; the next ReadPacket resumes.
func TestReaderResume(t *testing.T) {
	small := wiretest.ByName("5.0/PUBLISH/all-properties")
	large := &wire.Publish{Topic: "x", Payload: bytes.Repeat([]byte{7}, 300)}
	var stream []byte
	stream = append(stream, small.Raw...)
	stream, _ = wire.AppendPacket(stream, large, wire.V5)
	stream = append(stream, small.Raw...)
	var chunks [][]byte
	for i := 0; i < len(stream); i += 7 {
		chunks = append(chunks, stream[i:min(i+7, len(stream))])
	}
	r := wire.NewReaderSize(&flakyReader{chunks: chunks}, 0, 64)
	var got []wire.Packet
	for {
		p, err := r.ReadPacket(wire.V5)
		if err == errTimeout {
			continue
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	want := []wire.Packet{small.Packet, large, small.Packet}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d packets: %v", len(got), got)
	}
}

// zeroReader returns (0, nil) forever.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	if _, err := wire.NewReader(zeroReader{}, 0).ReadPacket(wire.V5); err != io.ErrNoProgress {
		t.Fatalf("%v, want io.ErrNoProgress", err)
	}
	// The same inside a large packet.
	r := wire.NewReaderSize(io.MultiReader(bytes.NewReader([]byte{0x30, 0xFF, 0x01}), zeroReader{}), 0, 16)
	if _, err := r.ReadPacket(wire.V5); err != io.ErrNoProgress {
		t.Fatalf("%v, want io.ErrNoProgress", err)
	}
	// And a plain error.
	r = wire.NewReaderSize(io.MultiReader(bytes.NewReader([]byte{0x30, 0xFF, 0x01}), &flakyReader{}), 0, 16)
	if _, err := r.ReadPacket(wire.V5); err != errTimeout {
		t.Fatalf("%v, want errTimeout", err)
	}
	if r.Buffered() != 0 {
		t.Fatalf("Buffered = %d", r.Buffered())
	}
}

func TestReaderBadVersion(t *testing.T) {
	r := wire.NewReader(bytes.NewReader([]byte{0xC0, 0}), 0)
	if _, err := r.ReadPacket(9); wire.AsError(err) == nil || wire.AsError(err).Code != wire.UnsupportedProtocolVersion {
		t.Fatalf("%v", err)
	}
	if _, _, err := wire.Decode([]byte{0xC0, 0}, 9); wire.AsError(err) == nil {
		t.Fatalf("%v", err)
	}
	// Version 0 decodes as 3.1.1.
	p, err := r.ReadPacket(0)
	if _, ok := p.(*wire.Pingreq); !ok || err != nil {
		t.Fatalf("%v %v", p, err)
	}
}

// TestConnectIgnoresVersion: CONNECT decodes by its own level.
func TestConnectIgnoresVersion(t *testing.T) {
	for _, g := range wiretest.Golden {
		if g.Packet.Type() != wire.CONNECT {
			continue
		}
		for _, v := range []wire.Version{0, wire.V31, wire.V311, wire.V5} {
			p, err := wire.NewReader(bytes.NewReader(g.Raw), 0).ReadPacket(v)
			if err != nil || !reflect.DeepEqual(p, g.Packet) {
				t.Errorf("%s as %v: %v", g.Name, v, err)
			}
		}
	}
}

// TestNoAliasing: decoded packets do not share memory with the Reader's
// buffer or the Decode input, on both the buffered and the large path.
func TestNoAliasing(t *testing.T) {
	for _, g := range wiretest.Golden {
		raw := append([]byte{}, g.Raw...)
		p, _, err := wire.Decode(raw, g.Version)
		if err != nil {
			t.Fatal(err)
		}
		for i := range raw {
			raw[i] = 0xEE
		}
		if !reflect.DeepEqual(p, g.Packet) {
			t.Errorf("%s: Decode result aliases its input", g.Name)
		}
		for _, size := range []int{16, 4096} {
			src := append(append([]byte{}, g.Raw...), bytes.Repeat([]byte{0xC0, 0}, 20)...)
			r := wire.NewReaderSize(bytes.NewReader(src), 0, size)
			p, err := r.ReadPacket(g.Version)
			if err != nil {
				t.Fatal(err)
			}
			for range 20 { // overwrite the buffer with PINGREQs
				if _, err := r.ReadPacket(g.Version); err != nil {
					t.Fatal(err)
				}
			}
			if !reflect.DeepEqual(p, g.Packet) {
				t.Errorf("%s (buffer %d): ReadPacket result aliases the buffer", g.Name, size)
			}
		}
	}
	// Slices aliasing a large packet's own body cannot overwrite each other.
	c := &wire.Connect{ProtocolName: "MQTT", Version: wire.V311, ClientID: "c", Will: &wire.Will{Topic: "w", Payload: []byte("will")},
		UsernameFlag: true, Username: "u", PasswordFlag: true, Password: bytes.Repeat([]byte("p"), 100)}
	raw, _ := wire.AppendPacket(nil, c, 0)
	p, err := wire.NewReaderSize(bytes.NewReader(raw), 0, 16).ReadPacket(0)
	if err != nil {
		t.Fatal(err)
	}
	got := p.(*wire.Connect)
	_ = append(got.Will.Payload, "XXXX"...)
	if !reflect.DeepEqual(got, c) {
		t.Errorf("appending to the will payload changed the packet")
	}
}

// A Reader that let go of its buffer while idle takes one again on the next
// read; with bytes buffered, ReleaseBuffer does nothing.
func TestReaderReleaseBuffer(t *testing.T) {
	pr, pw := io.Pipe()
	r := wire.NewReader(pr, 0)
	pub := func(s string) []byte {
		b, err := wire.AppendPacket(nil, &wire.Publish{Topic: "t", Payload: []byte(s)}, wire.V311)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	two := append(pub("one"), pub("two")...)
	go func() {
		pw.Write(two)              // two packets in one read
		pw.Write(pub("three")[:3]) // a partial packet...
		pw.Write(pub("three")[3:]) // ...and its rest
		pw.Write(pub("four"))
		pw.Close()
	}()
	for i, want := range []string{"one", "two", "three", "four"} {
		p, err := r.ReadPacket(wire.V311)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if got := string(p.(*wire.Publish).Payload); got != want {
			t.Fatalf("packet %d: %q, want %q", i, got, want)
		}
		r.ReleaseBuffer() // after "one", "two" is still buffered: a no-op
		if i == 0 && r.Buffered() == 0 {
			t.Fatal("the second packet was not buffered")
		}
	}
	if _, err := r.ReadPacket(wire.V311); err != io.EOF {
		t.Fatalf("after the last packet: %v, want EOF", err)
	}
}

// TestReaderPublishAllocations: a stream of PUBLISH packets to one topic
// costs the packet and its payload, nothing per field; a change of topic is
// decoded as the new topic (the reused string is never stale).
func TestReaderPublishAllocations(t *testing.T) {
	raw, err := wire.AppendPacket(nil, benchPublish(wire.V311, 64), wire.V311)
	if err != nil {
		t.Fatal(err)
	}
	r := wire.NewReader(&loopReader{b: raw}, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := r.ReadPacket(wire.V311); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Fatalf("%.1f allocations per PUBLISH, want at most 2 (packet, payload)", allocs)
	}

	var stream []byte
	topics := []string{"a/b", "a/b", "c", "a/b", "c", "c", "d/e/f"}
	for i, topic := range topics {
		stream, err = wire.AppendPacket(stream, &wire.Publish{QoS: 1, PacketID: uint16(i + 1),
			Topic: topic, Payload: []byte(topic)}, wire.V311)
		if err != nil {
			t.Fatal(err)
		}
	}
	r = wire.NewReader(bytes.NewReader(stream), 0)
	for i, want := range topics {
		p, err := r.ReadPacket(wire.V311)
		if err != nil {
			t.Fatal(err)
		}
		pub := p.(*wire.Publish)
		if pub.Topic != want || string(pub.Payload) != want || pub.PacketID != uint16(i+1) {
			t.Fatalf("packet %d: topic %q payload %q id %d, want topic %q", i, pub.Topic, pub.Payload, pub.PacketID, want)
		}
	}
}

// TestConnectBridgeFlag: the high bit of a 3.x protocol level (mosquitto's
// bridge convention, 0x83 / 0x84) decodes as Bridge with the level without
// it, encodes back to the same bytes, and is refused for 5.0 (0x85).
func TestConnectBridgeFlag(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level byte
		want  wire.Version
	}{{"MQTT", 0x84, wire.V311}, {"MQIsdp", 0x83, wire.V31}} {
		raw := []byte{0x10, 0, 0, byte(len(tc.name))}
		raw = append(raw, tc.name...)
		raw = append(raw, tc.level, 0x02, 0, 60, 0, 2, 'b', '1')
		raw[1] = byte(len(raw) - 2)
		p, n, err := wire.Decode(raw, 0)
		if err != nil || n != len(raw) {
			t.Fatalf("level 0x%02X: %v", tc.level, err)
		}
		c := p.(*wire.Connect)
		if !c.Bridge || c.Version != tc.want || c.ClientID != "b1" {
			t.Fatalf("level 0x%02X: decoded %+v, want a bridge CONNECT of %v", tc.level, c, tc.want)
		}
		out, err := wire.AppendPacket(nil, c, c.Version)
		if err != nil || !bytes.Equal(out, raw) {
			t.Fatalf("level 0x%02X: re-encoded % X (%v), want % X", tc.level, out, err, raw)
		}
	}
	raw := []byte{0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 0x85, 0x02, 0, 60, 0, 0, 0}
	_, _, err := wire.Decode(raw, 0)
	if we := wire.AsError(err); we == nil || we.Code != wire.UnsupportedProtocolVersion {
		t.Fatalf("level 0x85: %v, want UnsupportedProtocolVersion", err)
	}
	if _, err := wire.AppendPacket(nil, &wire.Connect{Version: wire.V5, Bridge: true, ClientID: "x"}, wire.V5); err == nil {
		t.Fatal("a 5.0 CONNECT with the bridge flag was encoded")
	}
}

// An error in a CONNECT carries the version the CONNECT announced, once the
// decoder has read it: the version a refusing CONNACK is written in.
func TestConnectErrorVersion(t *testing.T) {
	for _, tc := range []struct {
		bad  string
		want wire.Version
	}{
		{"properties/receive-maximum-0", wire.V5},     // protocol error in a 5.0 property
		{"connect/will-retain-without-will", wire.V5}, // malformed flags, after the level
		{"connect/will-qos3", wire.V311},
		{"connect/password-without-username-3.1", wire.V31},
		{"connect/protocol-name", 0}, // no version this package speaks
		{"connect/no-level", 0},
		{"header/connect-flags", 0}, // refused at the fixed header, before the body
	} {
		bad := wiretest.BadByName(tc.bad)
		_, err := wire.NewReader(bytes.NewReader(bad.Raw), 0).ReadPacket(0)
		we := wire.AsError(err)
		if we == nil || we.Code != bad.Code || we.Version != tc.want {
			t.Errorf("%s: %v (version %v), want code 0x%02X, version %v", tc.bad, err, versionOf(we), byte(bad.Code), tc.want)
		}
	}

	// Too large: the body is not read, the version comes from the bytes that
	// arrived with the header — if they did.
	big := &wire.Connect{Version: wire.V5, ClientID: "c", CleanStart: true,
		Will: &wire.Will{Topic: "w", Payload: bytes.Repeat([]byte("x"), 2000)}}
	raw, err := wire.AppendPacket(nil, big, wire.V5)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		src  io.Reader
		want wire.Version
	}{
		{"whole packet buffered", bytes.NewReader(raw), wire.V5},
		{"header alone", io.MultiReader(bytes.NewReader(raw[:3]), bytes.NewReader(raw[3:])), 0},
	} {
		_, err := wire.NewReader(tc.src, 1024).ReadPacket(0)
		we := wire.AsError(err)
		if we == nil || we.Code != wire.PacketTooLarge || we.Version != tc.want {
			t.Errorf("%s: %v (version %v), want 0x95 with version %v", tc.name, err, versionOf(we), tc.want)
		}
	}
}

func versionOf(we *wire.Error) wire.Version {
	if we == nil {
		return 0
	}
	return we.Version
}
