package store

// Comparing the projections of two stores, for `cairn replay --verify`:
// the live store's against those rebuilt from its event log. Apply is a
// function of the events alone (apply.go), so a healthy store and its
// replay hold byte-identical projection keys; every difference is a bug or
// damage, and is reported with both values decoded.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Difference is one projection key on which two stores disagree.
type Difference struct {
	Key string `json:"key"`
	// What: "missing" (only in the second store), "extra" (only in the
	// first) or "differs".
	What   string `json:"what"`
	First  string `json:"first,omitempty"`  // decoded value in the first store
	Second string `json:"second,omitempty"` // decoded value in the second store
}

// LogStart returns the seq of the first logged event (0: empty log) and
// whether the log's beginning was ever truncated (meta/seq exists, or the
// log does not start at 1): a truncated log cannot rebuild the projections.
func (s *Store) LogStart() (first uint64, truncated bool, err error) {
	err = s.snapshotRead("log start", func(r pebble.Reader) error {
		_, closer, err := r.Get(keySeq)
		switch {
		case err == nil:
			truncated = true
			_ = closer.Close()
		case !errors.Is(err, pebble.ErrNotFound):
			return err
		}
		return iterFamily(r, famEvent, func(key, _ []byte) error {
			first, _, err = splitU64(key)
			if err != nil {
				return err
			}
			return errStop
		})
	})
	return first, truncated || first > 1, err
}

// isProjection reports whether key is a projection key (not the log, not
// meta/).
func isProjection(key []byte) bool {
	return len(key) >= 2 && key[1] == '/' && key[0] != famEvent && knownFamily(key[0])
}

// CompareProjections calls fn for every projection key on which a and b
// disagree, in key order, each reading one snapshot. fn's error stops the
// comparison and is returned.
func CompareProjections(a, b *Store, fn func(Difference) error) error {
	if err := a.enterRead(); err != nil {
		return err
	}
	defer a.exitRead()
	if err := b.enterRead(); err != nil {
		return err
	}
	defer b.exitRead()
	sa, sb := a.db.NewSnapshot(), b.db.NewSnapshot()
	defer sa.Close()
	defer sb.Close()
	ia, err := sa.NewIter(nil)
	if err != nil {
		return err
	}
	defer ia.Close()
	ib, err := sb.NewIter(nil)
	if err != nil {
		return err
	}
	defer ib.Close()
	next := func(it *pebble.Iterator, first bool) bool {
		ok := it.Next()
		if first {
			ok = it.First()
		}
		for ok && !isProjection(it.Key()) {
			ok = it.Next()
		}
		return ok
	}
	okA, okB := next(ia, true), next(ib, true)
	for okA || okB {
		c := 0
		switch {
		case !okB:
			c = -1
		case !okA:
			c = 1
		default:
			c = bytes.Compare(ia.Key(), ib.Key())
		}
		var d *Difference
		switch {
		case c < 0:
			d = &Difference{Key: KeyString(ia.Key()), What: "extra", First: RenderValue(ia.Key(), ia.Value())}
			okA = next(ia, false)
		case c > 0:
			d = &Difference{Key: KeyString(ib.Key()), What: "missing", Second: RenderValue(ib.Key(), ib.Value())}
			okB = next(ib, false)
		default:
			if va, vb := ia.Value(), ib.Value(); !bytes.Equal(va, vb) {
				d = &Difference{Key: KeyString(ia.Key()), What: "differs", First: RenderValue(ia.Key(), va), Second: RenderValue(ib.Key(), vb)}
			}
			okA, okB = next(ia, false), next(ib, false)
		}
		if d != nil {
			if err := fn(*d); err != nil {
				return err
			}
		}
	}
	return errors.Join(ia.Error(), ib.Error())
}

// RenderValue decodes a record for people (JSON of the decoded value; the
// raw bytes in hex when it does not decode).
func RenderValue(key, val []byte) string {
	if len(key) < 2 || key[1] != '/' {
		return fmt.Sprintf("%x", val)
	}
	var v any
	switch key[0] {
	case famSession:
		v = &Session{}
	case famSub:
		v = &Subscription{}
	case famQueue:
		v = &QueueEntry{}
	case famMsg, famRetained:
		v = &Message{}
	case famQInfo:
		qi, err := decodeQueueInfo(val)
		if err != nil {
			return fmt.Sprintf("undecodable %x", val)
		}
		v = qi
	case famRef:
		n, err := decodeUvarint(val)
		if err != nil {
			return fmt.Sprintf("undecodable %x", val)
		}
		return fmt.Sprint(n)
	case famInbound, famExpiry, famQExpiry:
		return "(present)"
	default:
		return fmt.Sprintf("%x", val)
	}
	if _, ok := v.(QueueInfo); !ok {
		if err := decode(key, val, v); err != nil {
			return fmt.Sprintf("undecodable %x", val)
		}
	}
	j, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%x", val)
	}
	return string(j)
}
