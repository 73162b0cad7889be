package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// mqttjsSHA256 is the checksum of testdata/browser/mqtt.min.js (see its
// README).
const mqttjsSHA256 = "f3cbeae580d3010048938ee370f2db0c15d16e6f7fc147cb32ae5510e571b387"

// chromiumPath finds headless Chromium: $CAIRN_CHROMIUM, else Debian's
// chromium.
func chromiumPath() (string, error) {
	if p := os.Getenv("CAIRN_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium in PATH (install the Debian package chromium; .ci/run does)")
}

// logField returns a field of the last JSON log line of the broker's
// current run whose msg is msg and whose other fields match (nil if none).
func (b *broker) logField(msg, field string, match map[string]string) string {
	b.logs.mu.Lock()
	lines := strings.Split(b.logs.buf.String(), "\n")
	b.logs.mu.Unlock()
	prefix := runPrefix(b.starts)
	for i := len(lines) - 1; i >= 0; i-- {
		l, ok := strings.CutPrefix(lines[i], prefix)
		if !ok {
			continue
		}
		var rec map[string]any
		if json.Unmarshal([]byte(l), &rec) != nil || rec["msg"] != msg {
			continue
		}
		good := true
		for k, v := range match {
			good = good && fmt.Sprint(rec[k]) == v
		}
		if good {
			return fmt.Sprint(rec[field])
		}
	}
	return ""
}

// wsAddr is the broker's ws listener address (started with --listen-ws
// 127.0.0.1:0 by startBroker).
func (b *broker) wsAddr(t testing.TB) string {
	t.Helper()
	var a string
	if !waitFor(5*time.Second, func() bool { a = b.logField("listening", "addr", map[string]string{"transport": "ws"}); return a != "" }) {
		t.Fatal("the broker logged no ws listener")
	}
	return a
}

// adminAddr is the broker's admin endpoint address.
func (b *broker) adminAddr(t testing.TB) string {
	t.Helper()
	var a string
	if !waitFor(5*time.Second, func() bool { a = b.logField("admin endpoint listening", "addr", nil); return a != "" }) {
		t.Fatal("the broker logged no admin endpoint")
	}
	return a
}

// pageReport is what the page posts to /report.
type pageReport struct {
	Client   string `json:"client"`
	Stage    string `json:"stage"`
	Error    string `json:"error"`
	Granted  []int  `json:"granted"`
	Puback   bool   `json:"puback"`
	Messages []struct {
		Topic   string `json:"topic"`
		Payload string `json:"payload"`
		QoS     int    `json:"qos"`
		Retain  bool   `json:"retain"`
	} `json:"messages"`
}

// TestBrowserMQTTOverWebSocket: headless Chromium loads a page that uses
// MQTT.js (the npm package's browser bundle, served by the test) over
// ws://127.0.0.1:PORT/mqtt, in MQTT 3.1.1 and 5.0: it subscribes and gets
// the retained message set by a TCP client, publishes QoS 1 and gets the
// PUBACK and its own message back, and receives a QoS 1 message a TCP
// client publishes; a TCP subscriber receives what the browser published.
// The test asserts on what the page reports.
func TestBrowserMQTTOverWebSocket(t *testing.T) {
	chromium, err := chromiumPath()
	if err != nil {
		missingTool(t, "%v", err)
	}
	bundle, err := os.ReadFile("testdata/browser/mqtt.min.js")
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(bundle); hex.EncodeToString(sum[:]) != mqttjsSHA256 {
		t.Fatalf("testdata/browser/mqtt.min.js has checksum %x, want %s (see testdata/browser/README.md)", sum, mqttjsSHA256)
	}
	page, err := os.ReadFile("testdata/browser/page.html")
	if err != nil {
		t.Fatal(err)
	}
	// The page comes from another origin (the test's server): allow it.
	b := startBroker(t, "--ws-origins", "127.0.0.1:*")
	wsURL := "ws://" + b.wsAddr(t) + "/mqtt"

	tcp, _ := pahoConnect(t, b.addr, "browser-peer", true, nil)
	defer tcp.Disconnect(100)
	if tok := tcp.Publish("browser/retained", 1, true, "kept for the browser"); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("retained publish: %v", tok.Error())
	}
	fromBrowser := make(chan string, 4)
	if tok := tcp.Subscribe("browser/+/echo", 1, func(_ paho.Client, m paho.Message) { fromBrowser <- string(m.Payload()) }); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	reports := make(chan pageReport, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(page)
		case "/mqtt.min.js":
			w.Header().Set("Content-Type", "text/javascript")
			w.Write(bundle)
		case "/report":
			var rep pageReport
			body, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(body, &rep); err != nil {
				rep = pageReport{Stage: "error", Error: "bad report: " + string(body)}
			}
			reports <- rep
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()

	for _, v := range []int{4, 5} {
		t.Run(fmt.Sprintf("mqtt-v%d", v), func(t *testing.T) {
			id := fmt.Sprintf("browser-v%d", v)
			stopBrowser := startChromium(t, chromium, srv.URL+"/?v="+fmt.Sprint(v)+"&broker="+url.QueryEscape(wsURL))
			defer stopBrowser()
			wait := func(stage string) pageReport {
				t.Helper()
				for {
					select {
					case rep := <-reports:
						if rep.Stage == "error" {
							t.Fatalf("the page reported an error: %s", rep.Error)
						}
						if rep.Stage == stage {
							return rep
						}
					case <-time.After(60 * time.Second):
						t.Fatalf("the page did not report %q within 60s", stage)
					}
				}
			}
			sub := wait("subscribed")
			if fmt.Sprint(sub.Granted) != "[1 1]" {
				t.Fatalf("granted QoS %v, want [1 1]", sub.Granted)
			}
			if tok := tcp.Publish("browser/"+id+"/from-test", 1, false, "hello browser"); !tok.WaitTimeout(ioTimeout) || tok.Error() != nil {
				t.Fatalf("publish to the browser: %v", tok.Error())
			}
			done := wait("done")
			if done.Client != id || !done.Puback {
				t.Fatalf("page report %+v: want the PUBACK of its QoS 1 publish", done)
			}
			want := map[string]string{
				"browser/retained":             "kept for the browser|1|true",
				"browser/" + id + "/echo":      "hello from " + id + "|1|false",
				"browser/" + id + "/from-test": "hello browser|1|false",
			}
			for _, m := range done.Messages {
				got := fmt.Sprintf("%s|%d|%v", m.Payload, m.QoS, m.Retain)
				if w, ok := want[m.Topic]; !ok || got != w {
					t.Errorf("the page received %s = %s, want %q", m.Topic, got, w)
				}
				delete(want, m.Topic)
			}
			if len(want) > 0 {
				t.Errorf("the page did not receive %v", want)
			}
			select {
			case p := <-fromBrowser:
				if p != "hello from "+id {
					t.Errorf("TCP subscriber got %q from the browser", p)
				}
			case <-time.After(ioTimeout):
				t.Error("the TCP subscriber did not receive the browser's publish")
			}
		})
	}
	// The broker counted the upgrades.
	resp, err := http.Get("http://" + b.adminAddr(t) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metricsText, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(metricsText, []byte(`cairn_websocket_upgrades_total{listener="ws"} 2`)) {
		t.Errorf("metrics do not count 2 WebSocket upgrades:\n%s", grepLines(string(metricsText), "cairn_websocket"))
	}
}

// startChromium runs headless Chromium on url with a fresh profile; the
// returned function kills it and prints its output if the test failed.
func startChromium(t *testing.T, bin, url string) func() {
	t.Helper()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), url)
	var out lockedOutput
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = groupProcAttr()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	return func() {
		killGroup(cmd.Process.Pid) // its renderer and helper processes too
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("chromium pid %d did not exit after SIGKILL", cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("chromium output:\n%s", out.String())
		}
	}
}

type lockedOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *lockedOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.buf.Len() > 64<<10 {
		return len(p), nil
	}
	return o.buf.Write(p)
}

func (o *lockedOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
