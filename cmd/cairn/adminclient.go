package main

// The client side of the admin endpoint (engine/admin): JSON-lines queries
// decoded into the same row types the offline path produces, and backups
// unpacked from the endpoint's tar stream.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-mqtt/cairn/engine/admin"
	"github.com/cairn-mqtt/cairn/store"
)

type adminClient struct {
	base string
	http *http.Client
}

func newAdminClient(addr string) *adminClient {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	// No overall timeout: events --follow and large backups stream for as
	// long as they need; connecting is bounded by the transport.
	tr := &http.Transport{ResponseHeaderTimeout: 5 * time.Minute}
	tr.DialContext = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	return &adminClient{base: strings.TrimRight(base, "/"), http: &http.Client{Transport: tr}}
}

// get performs GET path?query and returns the response when it is 200.
func (a *adminClient) get(ctx context.Context, path string, q url.Values) (*http.Response, error) {
	u := a.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("admin endpoint %s: %w (is the broker running with --admin %s?)", a.base, err, strings.TrimPrefix(a.base, "http://"))
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var el admin.ErrorLine
		if json.Unmarshal(bytes.TrimSpace(body), &el) == nil && el.Error != "" {
			return nil, errors.New(el.Error)
		}
		return nil, fmt.Errorf("admin endpoint %s: %s: %s", a.base, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp, nil
}

// lines calls fn with every JSON line of GET path; a line carrying only an
// error ends the stream with that error.
func (a *adminClient) lines(ctx context.Context, path string, q url.Values, fn func([]byte) error) error {
	resp, err := a.get(ctx, path, q)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		if bytes.HasPrefix(line, []byte(`{"error":`)) {
			var el admin.ErrorLine
			if json.Unmarshal(line, &el) == nil {
				return errors.New(el.Error)
			}
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("admin endpoint %s: %w", a.base, err)
	}
	return nil
}

// rows decodes every line of GET path into T.
func rows[T any](ctx context.Context, a *adminClient, path string, q url.Values) ([]T, error) {
	out := []T{}
	err := a.lines(ctx, path, q, func(line []byte) error {
		var v T
		if err := jsonUnmarshal(line, &v); err != nil {
			return err
		}
		out = append(out, v)
		return nil
	})
	return out, err
}

func one[T any](ctx context.Context, a *adminClient, path string, q url.Values) (*T, error) {
	rs, err := rows[T](ctx, a, path, q)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("admin endpoint: %d answers to %s, want 1", len(rs), path)
	}
	return &rs[0], nil
}

// backupInto unpacks a fresh checkpoint of the running broker's store into
// dir (which must not exist), fsyncing every file and the directory.
func (a *adminClient) backupInto(ctx context.Context, dir string) (store.BackupInfo, error) {
	start := time.Now()
	info := store.BackupInfo{Dir: dir, Method: "checkpoint"}
	if _, err := os.Stat(dir); err == nil {
		return info, fmt.Errorf("backup: %s already exists", dir)
	}
	resp, err := a.get(ctx, "/v1/backup", nil)
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	info.LastSeq, _ = strconv.ParseUint(resp.Header.Get(admin.HeaderLastSeq), 10, 64)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return info, err
	}
	tr := tar.NewReader(resp.Body)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return info, fmt.Errorf("backup stream from %s broke off: %w", a.base, err)
		}
		name := filepath.Base(h.Name)
		if h.Typeflag != tar.TypeReg || name != h.Name || name == "." || name == ".." {
			return info, fmt.Errorf("backup stream: unexpected entry %q", h.Name)
		}
		n, err := writeSynced(filepath.Join(dir, name), tr)
		if err != nil {
			return info, err
		}
		info.Files++
		info.Bytes += n
	}
	d, err := os.Open(dir)
	if err != nil {
		return info, err
	}
	err = errors.Join(d.Sync(), d.Close())
	info.Took = time.Since(start)
	return info, err
}

func writeSynced(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if err = errors.Join(err, f.Close()); err != nil {
		return n, fmt.Errorf("backup: write %s: %w", path, err)
	}
	return n, nil
}

func jsonUnmarshal(line []byte, v any) error {
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("admin endpoint: bad line %q: %w", line, err)
	}
	return nil
}
