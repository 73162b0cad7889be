package admin

// The inspect endpoints: GET /v1/sessions, /v1/session?id=,
// /v1/queue?id=&from=&limit=, /v1/retained?filter=,
// /v1/events?from=&to=&type=&client=&follow=1 and /v1/stats. Each answers
// JSON lines (one row per line); a failure is one {"error": ...} line, with
// a 4xx/5xx status when it happens before the first row, or as the last
// line of a stream.

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-mqtt/cairn/store"
)

// followPoll is how often events?follow=1 looks for new events.
const followPoll = 100 * time.Millisecond

func (s *Server) query() Query { return Query{Store: s.opts.Store, Broker: s.opts.Broker} }

func (s *Server) registerInspect() {
	s.mux.HandleFunc("GET /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		rows, err := s.query().Sessions()
		answer(s, w, r, rows, err)
	})
	s.mux.HandleFunc("GET /v1/session", func(w http.ResponseWriter, r *http.Request) {
		d, err := s.query().Session(r.URL.Query().Get("id"))
		answer(s, w, r, []*store.SessionDetail{d}, err)
	})
	s.mux.HandleFunc("GET /v1/queue", func(w http.ResponseWriter, r *http.Request) {
		from, err1 := uintParam(r, "from")
		limit, err2 := uintParam(r, "limit")
		if err := firstErr(err1, err2); err != nil {
			s.writeError(w, r, err)
			return
		}
		rows, err := s.query().Queue(r.URL.Query().Get("id"), from, int(limit))
		answer(s, w, r, rows, err)
	})
	s.mux.HandleFunc("GET /v1/retained", func(w http.ResponseWriter, r *http.Request) {
		rows, err := s.query().Retained(r.URL.Query().Get("filter"))
		answer(s, w, r, rows, err)
	})
	s.mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.query().Stats()
		answer(s, w, r, []*store.Stats{st}, err)
	})
	s.mux.HandleFunc("GET /v1/events", s.events)
}

// answer writes rows as JSON lines, or err.
func answer[T any](s *Server, w http.ResponseWriter, r *http.Request, rows []T, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", contentNDJSON)
	enc := json.NewEncoder(w)
	for _, row := range rows {
		if err := enc.Encode(row); err != nil {
			return // the client went away
		}
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func uintParam(r *http.Request, name string) (uint64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, badf("%s=%q: not a number", name, v)
	}
	return n, nil
}

// events streams the log; with follow=1 it keeps the response open and
// sends new events as they are committed, until the client goes away or
// the server shuts down.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	from, err1 := uintParam(r, "from")
	to, err2 := uintParam(r, "to")
	var kinds []store.EventKind
	var err3 error
	if t := r.URL.Query().Get("type"); t != "" {
		kinds, err3 = ParseKinds(strings.Split(t, ","))
	}
	if err := firstErr(err1, err2, err3); err != nil {
		s.writeError(w, r, err)
		return
	}
	f := store.EventFilter{From: from, To: to, Kinds: kinds, Client: r.URL.Query().Get("client")}
	follow := r.URL.Query().Get("follow") == "1"
	w.Header().Set("Content-Type", contentNDJSON)
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	wrote := false
	emit := func(row store.EventRow) error {
		wrote = true
		return enc.Encode(row)
	}
	q := s.query()
	for {
		next, err := q.Events(f, emit)
		if err != nil {
			if !wrote {
				s.writeError(w, r, err)
			} else {
				_ = enc.Encode(ErrorLine{Error: err.Error()})
			}
			return
		}
		if !follow || (to > 0 && next > to) {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		f.From = next
		for s.opts.Store.LastSeq() < f.From {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(followPoll):
			}
		}
	}
}
