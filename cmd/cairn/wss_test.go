package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/cairn-mqtt/cairn/engine/listen/testpki"
	"github.com/cairn-mqtt/cairn/wire"
	"github.com/cairn-mqtt/cairn/wire/wiretest"
)

// dialMQTTWS opens MQTT over a WebSocket at url offering the subprotocols
// and returns the connection and the subprotocol the broker chose.
func dialMQTTWS(t *testing.T, url string, v wire.Version, client *http.Client, offer ...string) (*wiretest.Conn, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: offer, HTTPClient: client})
	if err != nil {
		if resp != nil {
			return nil, resp.Status, err
		}
		return nil, "", err
	}
	return wiretest.NewConn(t, websocket.NetConn(context.Background(), c, websocket.MessageBinary), v), c.Subprotocol(), nil
}

// TestServeWSSAndSubprotocols: cairn serve --listen-wss serves MQTT over
// wss:// with the TLS listener's certificate and client CA (mutual TLS:
// a client without a certificate is refused), negotiates the subprotocols
// mqtt and mqttv3.1 on both ws and wss (anything else is refused with HTTP
// 400), and behind both is the same engine as TCP: a TCP subscriber gets
// what wss and ws clients publish, and a wss subscriber what a TCP client
// publishes. SIGHUP reloads the wss certificate.
func TestServeWSSAndSubprotocols(t *testing.T) {
	dir := t.TempDir()
	serverCA, clientCA := testpki.NewCA(t, "server ca"), testpki.NewCA(t, "client ca")
	cert, key := serverCA.Issue(t, "broker", true)
	b := startBroker(t, "--listen-wss", "127.0.0.1:0",
		"--tls-cert", writeTestFile(t, dir, "cert.pem", cert), "--tls-key", writeTestFile(t, dir, "key.pem", key),
		"--tls-client-ca", writeTestFile(t, dir, "ca.pem", clientCA.PEM))
	waitLog(t, b, "cairn ready", 1)
	wssLog := b.logs.listening(1, "wss")
	if wssLog == nil || !strings.HasPrefix(wssLog["url"].(string), "wss://127.0.0.1:") || !strings.HasSuffix(wssLog["url"].(string), "/mqtt") {
		t.Fatalf("no wss listener in the startup log: %v", wssLog)
	}
	wssURL, wsURL := wssLog["url"].(string), "ws://"+b.wsAddr(t)+"/mqtt"
	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: serverCA.Pool(), Certificates: []tls.Certificate{clientCA.ClientCert(t, "device-1")}}}}
	noCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverCA.Pool()}}}

	// Mutual TLS: no client certificate, no connection.
	if c, _, err := dialMQTTWS(t, wssURL, wire.V311, noCert, "mqtt"); err == nil {
		c.Close()
		t.Fatal("a wss client without a client certificate was upgraded")
	}
	// Only the MQTT subprotocols are accepted.
	for _, u := range []string{wsURL, wssURL} {
		if c, status, err := dialMQTTWS(t, u, wire.V311, withCert, "chat"); err == nil || !strings.Contains(status, "400") {
			if c != nil {
				c.Close()
			}
			t.Fatalf("%s with subprotocol chat: %q %v, want HTTP 400", u, status, err)
		}
	}

	tcpSub := wiretest.Dial(t, b.addr, wire.V311)
	tcpSub.Connect(t, &wire.Connect{ClientID: "tcp-sub", CleanStart: true})
	tcpSub.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "ws/#", QoS: 1}}})
	if _, ok := tcpSub.Expect(t, wiretest.Timeout).(*wire.Suback); !ok {
		t.Fatal("no SUBACK")
	}

	cases := []struct {
		name, url, offer string
		v                wire.Version
	}{
		{"wss mqtt 3.1.1", wssURL, "mqtt", wire.V311},
		{"wss mqtt 5.0", wssURL, "mqtt", wire.V5},
		{"wss mqttv3.1 3.1", wssURL, "mqttv3.1", wire.V31},
		{"ws mqttv3.1 3.1", wsURL, "mqttv3.1", wire.V31},
		{"ws mqtt 3.1.1", wsURL, "mqtt", wire.V311},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, proto, err := dialMQTTWS(t, tc.url, tc.v, withCert, tc.offer)
			if err != nil {
				t.Fatalf("dial %s: %v", tc.url, err)
			}
			defer c.Close()
			if proto != tc.offer {
				t.Fatalf("negotiated subprotocol %q, want %q", proto, tc.offer)
			}
			c.Connect(t, &wire.Connect{ClientID: "ws-" + string(rune('a'+i)), CleanStart: true})
			topic := "ws/" + strings.ReplaceAll(tc.name, " ", "-")
			c.Send(&wire.Publish{Topic: topic, QoS: 1, PacketID: 7, Payload: []byte(tc.name)})
			if a, ok := c.Expect(t, wiretest.Timeout).(*wire.Ack); !ok || a.Kind != wire.PUBACK || a.PacketID != 7 {
				t.Fatalf("want PUBACK 7, got %v", a)
			}
			p, ok := tcpSub.Expect(t, wiretest.Timeout).(*wire.Publish)
			if !ok || p.Topic != topic || string(p.Payload) != tc.name {
				t.Fatalf("the TCP subscriber got %v, want %s", p, topic)
			}
			if p.QoS == 1 {
				tcpSub.Send(&wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID})
			}
		})
	}

	// And the other way: a wss subscriber gets a TCP client's message.
	wsSub, _, err := dialMQTTWS(t, wssURL, wire.V5, withCert, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	wsSub.Connect(t, &wire.Connect{ClientID: "wss-sub", CleanStart: true})
	wsSub.Send(&wire.Subscribe{PacketID: 1, Subscriptions: []wire.Subscription{{Filter: "to-ws/#", QoS: 1}}})
	if _, ok := wsSub.Expect(t, wiretest.Timeout).(*wire.Suback); !ok {
		t.Fatal("no SUBACK over wss")
	}
	tcpPub := wiretest.Dial(t, b.addr, wire.V311)
	tcpPub.Connect(t, &wire.Connect{ClientID: "tcp-pub", CleanStart: true})
	tcpPub.Send(&wire.Publish{Topic: "to-ws/x", QoS: 1, PacketID: 1, Payload: []byte("from tcp")})
	tcpPub.Expect(t, wiretest.Timeout)
	if p, ok := wsSub.Expect(t, wiretest.Timeout).(*wire.Publish); !ok || p.Topic != "to-ws/x" || string(p.Payload) != "from tcp" {
		t.Fatalf("the wss subscriber got %v", p)
	}

	// SIGHUP reloads the wss certificate: a client that trusts only the
	// new one's CA connects; the connection already open stays.
	newCA := testpki.NewCA(t, "new server ca")
	cert2, key2 := newCA.Issue(t, "broker", true)
	writeTestFile(t, dir, "cert.pem", cert2)
	writeTestFile(t, dir, "key.pem", key2)
	hup(t, b)
	waitLog(t, b, "reloaded", 1)
	if w := b.logs.lastJSON(1, "reloaded")["what"]; w != "wss certificates" {
		t.Fatalf("reloaded %v, want the wss certificates", w)
	}
	trustsNew := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: newCA.Pool(), Certificates: []tls.Certificate{clientCA.ClientCert(t, "device-2")}}}}
	c, _, err := dialMQTTWS(t, wssURL, wire.V311, trustsNew, "mqtt")
	if err != nil {
		t.Fatalf("after the reload, a client trusting the new certificate: %v", err)
	}
	c.Connect(t, &wire.Connect{ClientID: "after-reload", CleanStart: true})
	wsSub.Send(&wire.Pingreq{})
	if _, ok := wsSub.Expect(t, wiretest.Timeout).(*wire.Pingresp); !ok {
		t.Fatal("the wss connection opened before the reload was lost")
	}
}
