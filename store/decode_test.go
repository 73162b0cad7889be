package store

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// reflectDecode decodes by reflection only (the types without methods).
func reflectDecode(val []byte, v any) error {
	switch r := v.(type) {
	case *QueueEntry:
		return msgpack.Unmarshal(val, (*plainQueueEntry)(r))
	case *Message:
		return msgpack.Unmarshal(val, (*plainMessage)(r))
	}
	panic("unexpected type")
}

type fataler interface{ Fatalf(string, ...any) }

// checkScanners compares the scanners with the reflection decoder on val:
// a scanner that accepts val must produce what reflection produces, and
// one that rejects it must leave its record untouched. The scanners read
// a copy that is overwritten afterwards, as Pebble reuses an iterator's
// value: what they return must not alias it.
func checkScanners(t fataler, val []byte) (entryOK, msgOK bool) {
	return checkScanner(t, "entry", val, scanQueueEntry), checkScanner(t, "message", val, scanMessage)
}

func checkScanner[T any](t fataler, what string, val []byte, scan func([]byte, *T) bool) bool {
	scratch := bytes.Clone(val)
	var got, want, zero T
	ok := scan(scratch, &got)
	for i := range scratch {
		scratch[i] ^= 0xff
	}
	if !ok {
		if !reflect.DeepEqual(got, zero) {
			t.Fatalf("rejected %s %x changed the record: %+v", what, val, got)
		}
		return false
	}
	if err := reflectDecode(val, &want); err != nil {
		t.Fatalf("scanner accepted %s %x that reflection rejects: %v", what, val, err)
	}
	if !reflect.DeepEqual(got, want) { // DeepEqual follows the Body pointer
		t.Fatalf("%s %x:\nscanned   %#v\nreflected %#v", what, val, got, want)
	}
	return true
}

// Every entry and body the store writes is read by the scanners (no
// fallback), with exactly the reflection decoder's result.
func TestScannersReadWhatTheEncodersWrite(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var q QueueEntry
		fill(rt, reflect.ValueOf(&q).Elem(), "q")
		val, err := newEncoder().encode(&q)
		if err != nil {
			rt.Fatal(err)
		}
		if ok, _ := checkScanners(rt, val); !ok {
			rt.Fatalf("the scanner does not read a written entry: %x", val)
		}
		var got QueueEntry
		if err := decode([]byte("k"), val, &got); err != nil {
			rt.Fatal(err)
		}
		again, err := newEncoder().encode(&got)
		if err != nil {
			rt.Fatal(err)
		}
		if !bytes.Equal(val, again) {
			rt.Fatalf("round trip changed the entry:\n%x\n%x", val, again)
		}

		var m Message
		fill(rt, reflect.ValueOf(&m).Elem(), "m")
		mval, err := newEncoder().encode(&m)
		if err != nil {
			rt.Fatal(err)
		}
		if _, ok := checkScanners(rt, mval); !ok {
			rt.Fatalf("the scanner does not read a written message: %x", mval)
		}
	})
}

// Records in another writer's layout (reflection without compact ints, so
// every integer in 9 bytes; nil slices written as nil) still decode right,
// through the scanner or the fallback.
func TestDecodeOtherLayouts(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var q QueueEntry
		fill(rt, reflect.ValueOf(&q).Elem(), "q")
		var buf bytes.Buffer
		if err := msgpack.NewEncoder(&buf).Encode((*plainQueueEntry)(&q)); err != nil {
			rt.Fatal(err)
		}
		checkScanners(rt, buf.Bytes())
		var got, want QueueEntry
		if err := decode([]byte("k"), buf.Bytes(), &got); err != nil {
			rt.Fatal(err)
		}
		if err := reflectDecode(buf.Bytes(), &want); err != nil {
			rt.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			rt.Fatalf("decode %#v, reflection %#v", got, want)
		}
	})
}

// Arbitrary bytes: a scanner never disagrees with the reflection decoder
// and never panics.
func FuzzScanners(f *testing.F) {
	body := &Message{Topic: "a/b", Payload: []byte{}, QoS: 1, Props: []byte{1, 2}, From: "c", PublishedAt: -5, ExpiresAt: 1 << 40}
	for _, v := range []any{
		&QueueEntry{MsgID: 7, QoS: 1, SubIDs: []uint32{1, 1 << 31}, State: 2, PacketID: 65535, Size: 3, ExpiresAt: 9, Body: body},
		&QueueEntry{MsgID: 1 << 63, QoS: 2, Retain: true},
		body,
	} {
		val, err := newEncoder().encode(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(val)
	}
	f.Add([]byte{0x82, 0xa1, 'm', 0x01, 0xa1, 'b', 0xc0})
	f.Add([]byte{0x81, 0xa1, 's', 0x90})
	f.Add([]byte{0x81, 0xa1, 'p', 0xc4, 0x00})
	f.Fuzz(func(t *testing.T, val []byte) {
		checkScanners(t, val)
	})
}

// The unusual shapes the scanners refuse (so the fallback decides), and
// the ones they take.
func TestScannerEdges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		val   []byte
		entry bool
	}{
		{"empty", nil, false},
		{"not a map", []byte{0x90}, false},
		{"nil body", []byte{0x82, 0xa1, 'm', 0x01, 0xa1, 'b', 0xc0}, true},
		{"empty sub ids", []byte{0x81, 0xa1, 's', 0x90}, true},
		{"unknown key", []byte{0x81, 0xa1, 'w', 0x01}, false},
		{"trailing byte", []byte{0x81, 0xa1, 'm', 0x01, 0x00}, false},
		{"negative msg id", []byte{0x81, 0xa1, 'm', 0xff}, false},
		{"qos over a byte", []byte{0x81, 0xa1, 'q', 0xcd, 0x01, 0x00}, false},
		{"truncated int", []byte{0x81, 0xa1, 'm', 0xcf, 0x01}, false},
		{"two bodies", []byte{0x82, 0xa1, 'b', 0x80, 0xa1, 'b', 0x80}, false},
		{"str as payload", []byte{0x81, 0xa1, 'b', 0x81, 0xa1, 'p', 0xa1, 'x'}, false},
		{"payload longer than the value", []byte{0x81, 0xa1, 'b', 0x81, 0xa1, 'p', 0xc4, 0x05, 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ok, _ := checkScanners(t, tc.val); ok != tc.entry {
				t.Fatalf("scanQueueEntry(%x) = %v, want %v", tc.val, ok, tc.entry)
			}
		})
	}
}
