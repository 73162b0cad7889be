package admin_test

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.uber.org/goleak"

	"github.com/cairn-mqtt/cairn/engine"
	"github.com/cairn-mqtt/cairn/engine/admin"
	"github.com/cairn-mqtt/cairn/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	st   *store.Store
	srv  *admin.Server
	base string
	done chan error
}

func start(t *testing.T) *fixture {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	st, err := store.Open("db", store.Options{FS: vfs.NewMem(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	b := engine.New(st, engine.Options{Logger: log})
	srv := admin.New(admin.Options{Store: st, Broker: b, Logger: log})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, srv: srv, base: "http://" + l.Addr().String(), done: make(chan error, 1)}
	go func() { f.done <- srv.Serve(l) }()
	t.Cleanup(func() {
		f.shutdown(t)
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return f
}

func (f *fixture) shutdown(t *testing.T) {
	if f.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-f.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	f.srv = nil
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// Health answers at once, readiness only once the broker says so, and a
// handler registered by another part of Cairn is served beside the rest.
func TestHealthReadinessAndHandle(t *testing.T) {
	f := start(t)
	f.srv.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "cairn_up 1\n")
	}))
	if code, body, _ := get(t, f.base+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, body, _ := get(t, f.base+"/readyz"); code != 503 || !strings.Contains(body, "recovering") {
		t.Fatalf("/readyz before ready: %d %q", code, body)
	}
	f.srv.SetReady(true)
	if code, body, _ := get(t, f.base+"/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz when ready: %d %q", code, body)
	}
	if code, body, _ := get(t, f.base+"/metrics"); code != 200 || body != "cairn_up 1\n" {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	if code, body, h := get(t, f.base+"/v1/sessions"); code != 200 || body != "" || h.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("/v1/sessions of an empty store: %d %q %v", code, body, h)
	}
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/v1/session", 400, "a client id is required"},
		{"/v1/session?id=ghost", 404, `no session \"ghost\"`},
		{"/v1/queue?id=c&from=x", 400, `from=\"x\": not a number`},
		{"/v1/retained?filter=a/%23/b", 400, "topic filter"},
		{"/v1/events?type=nope", 400, `unknown event type \"nope\"`},
	} {
		code, body, _ := get(t, f.base+c.path)
		if code != c.code || !strings.HasPrefix(body, `{"error":`) || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s, want %d with %q", c.path, code, body, c.code, c.want)
		}
	}
}

// A followed event stream sends new events as they are committed and ends
// when the server shuts down, without holding the shutdown up.
func TestFollowStreamsAndEndsOnShutdown(t *testing.T) {
	f := start(t)
	resp, err := http.Get(f.base + "/v1/events?follow=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	done := make(chan error, 1)
	ev := &store.Event{Kind: store.EvRetainedExpired, Topic: "gone", Time: 1}
	if err := f.st.Commit([]*store.Event{ev}, true, func(err error) { done <- err }); err != nil || <-done != nil {
		t.Fatal(err)
	}
	select {
	case l := <-lines:
		if !strings.Contains(l, `"kind":"retained-expired"`) || !strings.Contains(l, `"topic":"gone"`) {
			t.Fatalf("followed line %s", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a committed event was not streamed")
	}
	start := time.Now()
	f.shutdown(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v with a stream open", d)
	}
	select {
	case _, ok := <-lines:
		if ok {
			t.Fatal("more lines after shutdown")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end at shutdown")
	}
}

// The backup endpoint streams a checkpoint: a tar of the store's files.
func TestBackupStream(t *testing.T) {
	f := start(t)
	done := make(chan error, 1)
	ev := &store.Event{Kind: store.EvSessionOpened, Client: "c", Session: &store.Session{ClientID: "c", ExpiryInterval: store.NeverExpires}}
	if err := f.st.Commit([]*store.Event{ev}, true, func(err error) { done <- err }); err != nil || <-done != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(f.base + "/v1/backup")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get(admin.HeaderLastSeq) != "1" {
		t.Fatalf("last seq header %q", resp.Header.Get(admin.HeaderLastSeq))
	}
	tr := tar.NewReader(resp.Body)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	all := strings.Join(names, " ")
	for _, want := range []string{"MANIFEST-", "OPTIONS-", ".log", "marker.format-version"} {
		if !strings.Contains(all, want) {
			t.Errorf("backup lacks a %s file: %v", want, names)
		}
	}
}
