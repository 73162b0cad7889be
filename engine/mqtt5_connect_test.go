package engine_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/wire"
)

// The CONNACK of a 5.0 client announces what the broker supports, with the
// defaults and with every limit configured.
func TestConnackProperties(t *testing.T) {
	t.Parallel()
	t.Run("defaults", func(t *testing.T) {
		tb := startBroker(t, engine.Options{})
		_, ack := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "", CleanStart: true, KeepAlive: 30})
		p := ack.Props
		if p == nil {
			t.Fatal("CONNACK without properties")
		}
		check := func(name string, got, want any) {
			t.Helper()
			if got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
		check("Receive Maximum", deref(p.ReceiveMaximum), uint16(64))
		check("Maximum Packet Size", deref(p.MaximumPacketSize), uint32(1<<20))
		check("Topic Alias Maximum", deref(p.TopicAliasMaximum), uint16(64))
		// Available: left out, which says so (§3.2.2.3.5, .11, .12, .13).
		check("Retain Available present", p.RetainAvailable != nil, false)
		check("Wildcard Subscription Available present", p.WildcardSubAvailable != nil, false)
		check("Subscription Identifier Available present", p.SubIDAvailable != nil, false)
		check("Shared Subscription Available present", p.SharedSubAvailable != nil, false)
		check("Maximum QoS present", p.MaximumQoS != nil, false) // 2 may not be sent
		check("Server Keep Alive present", p.ServerKeepAlive != nil, false)
		check("Session Expiry present", p.SessionExpiry != nil, false)
		if p.AssignedClientID == "" {
			t.Error("no Assigned Client Identifier for an empty client id")
		}
		_, ack = mustConnect5(t, tb.addr, &wire.Connect{ClientID: "named", CleanStart: true, KeepAlive: 30,
			Props: &wire.Properties{RequestResponseInfo: ptrByte(1)}})
		check("Assigned Client Identifier for a named client", ack.Props.AssignedClientID, "")
		check("Response Information without ResponseInfo configured", ack.Props.ResponseInfo, "")
	})
	t.Run("configured", func(t *testing.T) {
		tb := startBroker(t, engine.Options{Features: engine.Features{
			ReceiveMaximum: 5, TopicAliasMaximum: 3, MaxKeepAlive: 10, MaxSessionExpiry: 100,
			MaximumQoS: ptrByte(1), NoRetain: true, NoWildcardSubs: true, NoSubscriptionIDs: true, NoSharedSubs: true,
			ResponseInfo: "resp/",
		}})
		_, ack := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "capped", KeepAlive: 0,
			Props: &wire.Properties{SessionExpiry: ptrU32(1000), RequestResponseInfo: ptrByte(1)}})
		p := ack.Props
		want := map[string][2]any{
			"Receive Maximum":                   {deref(p.ReceiveMaximum), uint16(5)},
			"Topic Alias Maximum":               {deref(p.TopicAliasMaximum), uint16(3)},
			"Server Keep Alive":                 {deref(p.ServerKeepAlive), uint16(10)},
			"Session Expiry Interval":           {deref(p.SessionExpiry), uint32(100)},
			"Maximum QoS":                       {deref(p.MaximumQoS), byte(1)},
			"Retain Available":                  {deref(p.RetainAvailable), byte(0)},
			"Wildcard Subscription Available":   {deref(p.WildcardSubAvailable), byte(0)},
			"Subscription Identifier Available": {deref(p.SubIDAvailable), byte(0)},
			"Shared Subscription Available":     {deref(p.SharedSubAvailable), byte(0)},
			"Response Information":              {p.ResponseInfo, "resp/capped"},
		}
		for name, gw := range want {
			if gw[0] != gw[1] {
				t.Errorf("%s = %v, want %v", name, gw[0], gw[1])
			}
		}
		if rec := storedSession(t, tb, "capped"); rec == nil || rec.ExpiryInterval != 100 {
			t.Fatalf("stored session %+v, want expiry interval capped to 100", rec)
		}
	})
	t.Run("no topic aliases", func(t *testing.T) {
		tb := startBroker(t, engine.Options{Features: engine.Features{NoTopicAliases: true}})
		_, ack := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "na", CleanStart: true})
		if ack.Props.TopicAliasMaximum != nil {
			t.Fatalf("Topic Alias Maximum %d announced with NoTopicAliases", *ack.Props.TopicAliasMaximum)
		}
	})
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// A keep alive above the broker's maximum (or none) is replaced by Server
// Keep Alive, and the broker holds the client to it: DISCONNECT 0x8D.
func TestServerKeepAlive(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{Features: engine.Features{MaxKeepAlive: 1}})
	r, ack := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "ska", CleanStart: true, KeepAlive: 0})
	if ack.Props.ServerKeepAlive == nil || *ack.Props.ServerKeepAlive != 1 {
		t.Fatalf("Server Keep Alive %v, want 1", deref(ack.Props.ServerKeepAlive))
	}
	start := time.Now()
	d := r.expectDisconnect(t, wire.KeepAliveTimeout)
	if el := time.Since(start); el < time.Second || el > 4*time.Second {
		t.Fatalf("keep alive DISCONNECT after %v, want about 1.5 s", el)
	}
	if reasonOf(d.Props) == "" {
		t.Error("DISCONNECT 0x8D without a reason string")
	}
	// Within the limit the client's own keep alive stands, unannounced.
	_, ack = mustConnect5(t, tb.addr, &wire.Connect{ClientID: "ska2", CleanStart: true, KeepAlive: 1})
	if ack.Props.ServerKeepAlive != nil {
		t.Fatalf("Server Keep Alive %d sent for a keep alive within the maximum", *ack.Props.ServerKeepAlive)
	}
}

// A will the broker cannot honour refuses the connection with the 5.0 code
// (3.1.1: 0x05), a reason string, and a closed socket.
func TestConnectCapabilityRefusals(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{Features: engine.Features{MaximumQoS: ptrByte(1), NoRetain: true}})
	cases := []struct {
		name string
		will *wire.Will
		want wire.ReasonCode
	}{
		{"will QoS above maximum", &wire.Will{Topic: "w", QoS: 2, Payload: []byte("x")}, wire.QoSNotSupported},
		{"retained will without retain", &wire.Will{Topic: "w", Retain: true, Payload: []byte("x")}, wire.RetainNotSupported},
		{"will payload not UTF-8", &wire.Will{Topic: "w", Payload: []byte{0xff, 0xfe},
			Props: &wire.Properties{PayloadFormat: ptrByte(1)}}, wire.PayloadFormatInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, ack := connect5(t, tb.addr, &wire.Connect{ClientID: "cap", CleanStart: true, Will: tc.will})
			if ack.ReasonCode != tc.want || reasonOf(ack.Props) == "" {
				t.Fatalf("CONNACK 0x%02X %q, want 0x%02X with a reason string", byte(ack.ReasonCode), reasonOf(ack.Props), byte(tc.want))
			}
			r.expectClosed(t, 5*time.Second)
		})
	}
	t.Run("3.1.1 will QoS above maximum", func(t *testing.T) {
		r := dialRaw(t, tb.addr)
		ack := r.Connect(t, &wire.Connect{ClientID: "cap3", CleanStart: true, Will: &wire.Will{Topic: "w", QoS: 2, Payload: []byte("x")}})
		if ack.ReasonCode != wire.ConnRefusedNotAuthorized {
			t.Fatalf("CONNACK 0x%02X, want 0x05", byte(ack.ReasonCode))
		}
		r.expectClosed(t, 5*time.Second)
	})
	t.Run("valid UTF-8 will accepted", func(t *testing.T) {
		mustConnect5(t, tb.addr, &wire.Connect{ClientID: "cap-ok", CleanStart: true,
			Will: &wire.Will{Topic: "w", QoS: 1, Payload: []byte("héllo"), Props: &wire.Properties{PayloadFormat: ptrByte(1)}}})
	})
}

// Reason strings go on failed acks, unless the client asked for no problem
// information; and never beyond the client's maximum packet size.
func TestRequestProblemInformation(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{Features: engine.Features{NoWildcardSubs: true}})
	cases := []struct {
		name       string
		props      *wire.Properties
		wantReason bool
	}{
		{"default", nil, true},
		{"request problem information 0", &wire.Properties{RequestProblemInfo: ptrByte(0)}, false},
		{"maximum packet size too small for the reason", &wire.Properties{MaximumPacketSize: ptrU32(40)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "rpi", CleanStart: true, Props: tc.props})
			sa := r.subscribe5(t, 1, nil, sub5("a/+", 1), sub5("a/b", 1))
			if len(sa.ReasonCodes) != 2 || sa.ReasonCodes[0] != wire.WildcardSubsNotSupported || sa.ReasonCodes[1] != wire.GrantedQoS1 {
				t.Fatalf("SUBACK codes %v, want [0xA2 0x01]", sa.ReasonCodes)
			}
			if got := reasonOf(sa.Props) != ""; got != tc.wantReason {
				t.Fatalf("SUBACK reason string %q, want present=%v", reasonOf(sa.Props), tc.wantReason)
			}
		})
	}
}

// Maximum packet size both ways: a larger packet from the client is
// DISCONNECT 0x95; a delivery larger than the client's maximum is dropped
// for that client (and from its stored queue), the others still flow.
func TestMaximumPacketSize(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{MaxPacketSize: 256})
	t.Run("inbound", func(t *testing.T) {
		r, ack := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "big-pub", CleanStart: true})
		if deref(ack.Props.MaximumPacketSize) != uint32(256) {
			t.Fatalf("Maximum Packet Size %v, want 256", deref(ack.Props.MaximumPacketSize))
		}
		r.Send(&wire.Publish{Topic: "big", Payload: make([]byte, 300)})
		r.expectDisconnect(t, wire.PacketTooLarge)
	})
	t.Run("outbound", func(t *testing.T) {
		sub, _ := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "small-sub", KeepAlive: 60,
			Props: &wire.Properties{SessionExpiry: ptrU32(300), MaximumPacketSize: ptrU32(100)}})
		sub.subscribe5(t, 1, nil, sub5("mps/#", 1))
		pub, _ := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "mps-pub", CleanStart: true})
		pub.publishQoS1(t, 1, "mps/big", string(bytes.Repeat([]byte("x"), 150)), nil)
		pub.publishQoS1(t, 2, "mps/small", "fits", nil)
		p := sub.expectPublish(t, 5*time.Second)
		if p.Topic != "mps/small" || size5(p) > 100 {
			t.Fatalf("got %s (%d bytes), want only mps/small", p.Topic, size5(p))
		}
		sub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
		sub.expectSilence(t, 200*time.Millisecond)
		// The dropped message is gone from the session's queue too.
		sub.Send(&wire.Disconnect{})
		sub.expectClosed(t, 5*time.Second)
		sub, ack := mustConnect5(t, tb.addr, &wire.Connect{ClientID: "small-sub", KeepAlive: 60,
			Props: &wire.Properties{SessionExpiry: ptrU32(300)}})
		if !ack.SessionPresent {
			t.Fatal("session not present")
		}
		sub.expectSilence(t, 300*time.Millisecond)
	})
}

func size5(p wire.Packet) int { return wire.Size(p, wire.V5) }

// A client's Maximum Packet Size bounds the CONNACK too (§3.2.0-1,
// §3.2.2-19): when the accepting CONNACK, whose properties announce the
// broker's limits, does not fit, the connection is refused with a CONNACK
// that does (0x83, no Reason String) and no session is created; a refusal's
// Reason String is left out to fit; below the size of a bare CONNACK
// nothing is sent at all.
func TestConnackFitsMaximumPacketSize(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{MaxClientIDLen: 8})
	t.Run("accepting CONNACK too large", func(t *testing.T) {
		c := session5("tiny-mps", false, 300)
		c.Props.MaximumPacketSize = ptrU32(12) // the accepting CONNACK takes 16
		r, ack := connect5(t, tb.addr, c)
		if ack.ReasonCode != wire.ImplementationSpecificError || size5(ack) > 12 {
			t.Fatalf("CONNACK 0x%02X of %d bytes, want 0x83 within 12", byte(ack.ReasonCode), size5(ack))
		}
		if got := r.ExpectClosed(t, 5*time.Second); len(got) != 0 {
			t.Fatalf("packets after the refusal: %v", got)
		}
		if rec := storedSession(t, tb, "tiny-mps"); rec != nil {
			t.Fatalf("a session was stored for a refused connection: %+v", rec)
		}
		_, ack = mustConnect5(t, tb.addr, session5("tiny-mps", false, 300))
		if ack.SessionPresent {
			t.Fatal("session present after the refused connection")
		}
	})
	t.Run("accepting CONNACK just fits", func(t *testing.T) {
		// Announcing only what is not the default (capabilities that are
		// available go unsaid) keeps it at 16 bytes.
		c := &wire.Connect{ClientID: "fits16", CleanStart: true, Props: &wire.Properties{MaximumPacketSize: ptrU32(16)}}
		r, ack := connect5(t, tb.addr, c)
		defer r.Close()
		if ack.ReasonCode != wire.Success || size5(ack) > 16 {
			t.Fatalf("CONNACK 0x%02X of %d bytes, want 0x00 within 16", byte(ack.ReasonCode), size5(ack))
		}
	})
	t.Run("refusal reason string left out", func(t *testing.T) {
		_, ack := connect5(t, tb.addr, &wire.Connect{ClientID: "far-too-long-an-id", CleanStart: true,
			Props: &wire.Properties{MaximumPacketSize: ptrU32(20)}})
		if ack.ReasonCode != wire.ClientIDNotValid || size5(ack) > 20 || reasonOf(ack.Props) != "" {
			t.Fatalf("CONNACK 0x%02X of %d bytes (reason %q), want 0x85 within 20 and no reason",
				byte(ack.ReasonCode), size5(ack), reasonOf(ack.Props))
		}
	})
	t.Run("not even a bare CONNACK fits", func(t *testing.T) {
		r := dialRawV(t, tb.addr, wire.V5)
		r.Send(&wire.Connect{Version: wire.V5, ClientID: "mps4", CleanStart: true,
			Props: &wire.Properties{MaximumPacketSize: ptrU32(4)}})
		if got := r.ExpectClosed(t, 5*time.Second); len(got) != 0 {
			t.Fatalf("sent %v to a client whose maximum packet size is 4", got)
		}
	})
	t.Run("a CONNACK that fits", func(t *testing.T) {
		c := session5("fits-mps", true, 0)
		c.Props = &wire.Properties{MaximumPacketSize: ptrU32(64)}
		_, ack := mustConnect5(t, tb.addr, c)
		if size5(ack) > 64 {
			t.Fatalf("CONNACK of %d bytes, maximum 64", size5(ack))
		}
	})
}

// Every server DISCONNECT carries the reason of §4.13 / §3.14.2.1.
func TestServerDisconnectReasons(t *testing.T) {
	t.Parallel()
	tb := startBroker(t, engine.Options{})
	t.Run("0x8E session taken over", func(t *testing.T) {
		old, _ := mustConnect5(t, tb.addr, session5("twin5", true, 0))
		mustConnect5(t, tb.addr, session5("twin5", false, 0))
		old.expectDisconnect(t, wire.SessionTakenOver)
	})
	t.Run("0x81 malformed packet", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("malformed5", true, 0))
		// PUBLISH "a" with a Session Expiry Interval property (not allowed in PUBLISH).
		r.SendRaw([]byte{0x30, 0x09, 0x00, 0x01, 'a', 0x05, 0x11, 0, 0, 0, 1})
		r.expectDisconnect(t, wire.MalformedPacket)
	})
	t.Run("0x8F invalid topic filter", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("badfilter5", true, 0))
		// SUBSCRIBE packet id 1, no properties, "a/#/b" QoS 1.
		r.SendRaw([]byte{0x82, 0x0b, 0, 1, 0, 0, 5, 'a', '/', '#', '/', 'b', 1})
		r.expectDisconnect(t, wire.TopicFilterInvalid)
	})
	t.Run("0x90 invalid topic name", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("badtopic5", true, 0))
		// PUBLISH QoS 0 to "a/+", no properties.
		r.SendRaw([]byte{0x30, 0x06, 0, 3, 'a', '/', '+', 0})
		r.expectDisconnect(t, wire.TopicNameInvalid)
	})
	t.Run("0x82 protocol error", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("proto5", true, 0))
		r.Send(&wire.Connect{Version: wire.V5, ClientID: "proto5", CleanStart: true})
		r.expectDisconnect(t, wire.ProtocolError)
	})
	t.Run("0x82 subscription identifier from a client", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("subid-pub", true, 0))
		r.Send(&wire.Publish{Topic: "x", Payload: []byte("y"), Props: &wire.Properties{SubscriptionIDs: []uint32{3}}})
		r.expectDisconnect(t, wire.ProtocolError)
	})
	t.Run("0x82 session expiry set by DISCONNECT after none", func(t *testing.T) {
		r, _ := mustConnect5(t, tb.addr, session5("dexp", true, 0))
		r.Send(&wire.Disconnect{Props: &wire.Properties{SessionExpiry: ptrU32(60)}})
		r.expectDisconnect(t, wire.ProtocolError)
	})
	t.Run("0x8B server shutting down", func(t *testing.T) {
		tb2 := startBroker(t, engine.Options{})
		r, _ := mustConnect5(t, tb2.addr, session5("shut5", true, 0))
		done := make(chan struct{})
		go func() { tb2.stop(); close(done) }()
		r.expectDisconnect(t, wire.ServerShuttingDown)
		<-done
	})
}
