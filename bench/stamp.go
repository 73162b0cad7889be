package bench

import (
	"encoding/binary"
	"math/bits"
	"time"
)

// Every payload the load generator publishes starts with a stamp: the run's
// nonce (so messages left over from another run are not counted), the
// publisher's index, the message's sequence number within that publisher,
// and the send time on the generator's monotonic clock. Subscribers use it
// for end-to-end latency and to count each message once (seqSet).

// stampLen is the stamp's size, the smallest payload a run can use.
const stampLen = 24

var epoch = time.Now()

// clock is nanoseconds since the process started, monotonic.
func clock() int64 { return int64(time.Since(epoch)) }

func putStamp(b []byte, run, pub uint32, seq uint64, at int64) {
	binary.BigEndian.PutUint32(b[0:], run)
	binary.BigEndian.PutUint32(b[4:], pub)
	binary.BigEndian.PutUint64(b[8:], seq)
	binary.BigEndian.PutUint64(b[16:], uint64(at))
}

func readStamp(b []byte) (run, pub uint32, seq uint64, at int64, ok bool) {
	if len(b) < stampLen {
		return 0, 0, 0, 0, false
	}
	return binary.BigEndian.Uint32(b[0:]), binary.BigEndian.Uint32(b[4:]),
		binary.BigEndian.Uint64(b[8:]), int64(binary.BigEndian.Uint64(b[16:])), true
}

// seqSet is a growable set of sequence numbers (a bitmap: sequences are
// dense from 0). Not safe for concurrent use.
type seqSet struct {
	words []uint64
	n     int64
}

// add inserts seq and reports whether it was new.
func (s *seqSet) add(seq uint64) bool {
	w := int(seq >> 6)
	if w >= len(s.words) {
		if seq > 1<<36 {
			return false // not ours: no run sends that many
		}
		nw := make([]uint64, max(w+1, 2*len(s.words), 16))
		copy(nw, s.words)
		s.words = nw
	}
	m := uint64(1) << (seq & 63)
	if s.words[w]&m != 0 {
		return false
	}
	s.words[w] |= m
	s.n++
	return true
}

// has reports whether seq is in the set.
func (s *seqSet) has(seq uint64) bool {
	w := int(seq >> 6)
	return w < len(s.words) && s.words[w]&(1<<(seq&63)) != 0
}

// len is the number of members.
func (s *seqSet) len() int64 { return s.n }

// eachMissing calls f, in increasing order, for each member of want that is
// not in s.
func (s *seqSet) eachMissing(want *seqSet, f func(seq uint64)) {
	for i, w := range want.words {
		if i < len(s.words) {
			w &^= s.words[i]
		}
		for w != 0 {
			b := bits.TrailingZeros64(w)
			f(uint64(i)<<6 | uint64(b))
			w &^= 1 << b
		}
	}
}

// missing counts the members of want that are not in s.
func (s *seqSet) missing(want *seqSet) int64 {
	var n int64
	for i, w := range want.words {
		if i < len(s.words) {
			w &^= s.words[i]
		}
		n += int64(bits.OnesCount64(w))
	}
	return n
}
