package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// pahoPython finds a Python 3 that has paho-mqtt (Debian's
// python3-paho-mqtt installs it for /usr/bin/python3): $CAIRN_PYTHON, else
// python3 in PATH, else /usr/bin/python3.
func pahoPython() (string, error) {
	cands := []string{"python3", "/usr/bin/python3"}
	if p := os.Getenv("CAIRN_PYTHON"); p != "" {
		cands = []string{p}
	}
	for _, c := range cands {
		p, err := exec.LookPath(c)
		if err != nil {
			continue
		}
		if exec.Command(p, "-c", "import paho.mqtt.client").Run() == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no python3 with paho-mqtt (install the Debian package python3-paho-mqtt; .ci/run does)")
}

type pyMsg struct {
	Topic   string `json:"topic"`
	Payload string `json:"payload"`
	QoS     int    `json:"qos"`
	Retain  bool   `json:"retain"`
}

type pyResult struct {
	Error         string           `json:"error"`
	PubConnack    struct{ RC int } `json:"pub_connack"`
	ResumeConnack struct {
		RC             int  `json:"rc"`
		SessionPresent bool `json:"session_present"`
	} `json:"resume_connack"`
	Live   []pyMsg `json:"live"`
	Queued []pyMsg `json:"queued"`
}

// TestPahoPythonInterop runs Eclipse Paho for Python (testdata/
// paho_interop.py) against the broker binary over TCP and over WebSocket,
// in MQTT 3.1.1 and 5.0: a retained message reaches a later subscriber
// flagged retained; QoS 0, 1 and 2 arrive at their QoS in order; a
// persistent session gets what was queued while it was away.
func TestPahoPythonInterop(t *testing.T) {
	py, err := pahoPython()
	if err != nil {
		missingTool(t, "%v", err)
	}
	b := startBroker(t)
	ports := map[string]string{"tcp": b.addr, "websockets": b.wsAddr(t)}
	for _, transport := range []string{"tcp", "websockets"} {
		for _, v := range []string{"311", "5"} {
			t.Run(transport+"-"+v, func(t *testing.T) {
				host, port := splitAddr(t, ports[transport])
				cmd := exec.Command(py, "testdata/paho_interop.py", host, port, transport, v)
				out, err := runWithTimeout(cmd, 60*time.Second)
				if err != nil {
					t.Fatalf("paho_interop.py: %v\n%s", err, out)
				}
				lines := strings.Split(strings.TrimSpace(string(out)), "\n")
				var r pyResult
				if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
					t.Fatalf("paho_interop.py printed no result: %v\n%s", err, out)
				}
				if r.Error != "" {
					t.Fatalf("paho: %s", r.Error)
				}
				base := "py/" + transport + "-" + v
				want := []pyMsg{
					{base + "/retained", "kept", 1, true},
					{base + "/q0", "message at QoS 0", 0, false},
					{base + "/q1", "message at QoS 1", 1, false},
					{base + "/q2", "message at QoS 2", 2, false},
				}
				if fmt.Sprint(r.Live) != fmt.Sprint(want) {
					t.Errorf("live messages:\n got %v\nwant %v", r.Live, want)
				}
				wantQ := []pyMsg{{base + "/away", "queued 0", 1, false}, {base + "/away", "queued 1", 1, false}}
				if fmt.Sprint(r.Queued) != fmt.Sprint(wantQ) || !r.ResumeConnack.SessionPresent {
					t.Errorf("persistent session: present %v, queued %v, want %v", r.ResumeConnack.SessionPresent, r.Queued, wantQ)
				}
			})
		}
	}
}
