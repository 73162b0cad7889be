package store

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

// Types with the same fields and tags but without the EncodeMsgpack methods:
// msgpack encodes them by reflection.
type (
	plainEvent      Event
	plainMessage    Message
	plainTarget     Target
	plainQueueEntry QueueEntry
)

func reflectEncode(t *rapid.T, v any) []byte {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// fill sets every field of the struct v points to a random value or its
// zero value, by reflection, so a field added to a type later is covered
// without touching this test.
func fill(t *rapid.T, v reflect.Value, path string) {
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		name := path + "." + sf.Name
		if rapid.IntRange(0, 3).Draw(t, name+"/zero") == 0 {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(rapid.StringN(0, 20, -1).Draw(t, name))
		case reflect.Bool:
			f.SetBool(rapid.Bool().Draw(t, name))
		case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			f.SetUint(rapid.Uint64().Draw(t, name) >> rapid.IntRange(0, 63).Draw(t, name+"/shift"))
		case reflect.Int64:
			f.SetInt(rapid.Int64().Draw(t, name) >> rapid.IntRange(0, 63).Draw(t, name+"/shift"))
		case reflect.Slice:
			n := rapid.IntRange(0, 300).Draw(t, name+"/len")
			if f.Type().Elem().Kind() != reflect.Uint8 {
				n = rapid.IntRange(0, 4).Draw(t, name+"/len")
			}
			s := reflect.MakeSlice(f.Type(), n, n)
			for j := 0; j < n; j++ {
				if e := s.Index(j); e.Kind() == reflect.Struct {
					fill(t, e, fmt.Sprintf("%s[%d]", name, j))
				} else {
					e.SetUint(rapid.Uint64().Draw(t, name) >> rapid.IntRange(0, 63).Draw(t, name+"/shift"))
				}
			}
			f.Set(s)
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			fill(t, p.Elem(), name)
			f.Set(p)
		default:
			t.Fatalf("fill: unhandled kind %v of %s", f.Kind(), name)
		}
	}
}

// The hand-written encoders produce exactly the reflection encoder's bytes.
func TestEncodersMatchReflection(t *testing.T) {
	check := func(name string, mk func(*rapid.T) (custom, plain any)) {
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				custom, plain := mk(t)
				got, want := reflectEncode(t, custom), reflectEncode(t, plain)
				if !bytes.Equal(got, want) {
					t.Fatalf("encodings differ:\n custom %x\nreflect %x", got, want)
				}
			})
		})
	}
	check("Event", func(t *rapid.T) (any, any) {
		var v Event
		fill(t, reflect.ValueOf(&v).Elem(), "ev")
		return &v, (*plainEvent)(&v)
	})
	check("Message", func(t *rapid.T) (any, any) {
		var v Message
		fill(t, reflect.ValueOf(&v).Elem(), "m")
		return &v, (*plainMessage)(&v)
	})
	check("Target", func(t *rapid.T) (any, any) {
		var v Target
		fill(t, reflect.ValueOf(&v).Elem(), "t")
		return &v, (*plainTarget)(&v)
	})
	check("QueueEntry", func(t *rapid.T) (any, any) {
		var v QueueEntry
		fill(t, reflect.ValueOf(&v).Elem(), "q")
		return &v, (*plainQueueEntry)(&v)
	})
}

// Encoded events decode to a value that encodes to the same bytes: every
// field survives the round trip.
func TestEventRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var ev Event
		fill(t, reflect.ValueOf(&ev).Elem(), "ev")
		ev.Seq = 42
		val, err := newEncoder().encodeEvent(&ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEvent(42, val)
		if err != nil {
			t.Fatal(err)
		}
		again, err := newEncoder().encodeEvent(got)
		if err != nil {
			t.Fatal(err)
		}
		if got.Seq != 42 || !bytes.Equal(val, again) {
			t.Fatalf("round trip changed the event:\n%x\n%x", val, again)
		}
	})
}

// The ack path's partial decoder reads exactly what a full decode reads, and
// understands every QueueEntry the store writes (no fallback needed).
func TestEntryRefMatchesFullDecode(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var q QueueEntry
		fill(t, reflect.ValueOf(&q).Elem(), "q")
		val, err := newEncoder().encode(&q)
		if err != nil {
			t.Fatal(err)
		}
		want := entryRef{msgID: q.MsgID, size: q.Size, expiresAt: q.ExpiresAt, inline: q.Body != nil, shared: q.Group != ""}
		got, ok := scanEntryRef(val)
		if !ok || got != want {
			t.Fatalf("scanEntryRef = %+v, %v; want %+v (%x)", got, ok, want, val)
		}
		// Encoded by reflection without compact ints (another writer's
		// layout), it still decodes right, through the fallback if need be.
		var buf bytes.Buffer
		if err := msgpack.NewEncoder(&buf).Encode((*plainQueueEntry)(&q)); err != nil {
			t.Fatal(err)
		}
		if got, err := decodeEntryRef([]byte("k"), buf.Bytes()); err != nil || got != want {
			t.Fatalf("decodeEntryRef(reflect) = %+v, %v; want %+v", got, err, want)
		}
	})
	if _, ok := scanEntryRef([]byte{0x81, 0xa1, 'm', 0xd9}); ok {
		t.Fatal("a truncated entry was accepted")
	}
}
