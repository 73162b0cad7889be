package store

// A WAL reader of our own, for `cairn recover`: it reads Pebble's log files
// chunk by chunk, tells a clean end from a torn tail from damage in the
// middle, and — unlike Pebble's reader, which stops at the first bad chunk —
// resynchronises after damage so that every intact record behind it can be
// salvaged.
//
// Format (pebble/v2 record package): the file is a sequence of 32 KiB
// blocks; each block holds chunks that never cross it. A chunk is a header
// — CRC (4, little-endian), payload length (2), type (1), and for the
// recyclable and WAL-sync formats the log number (4), for WAL-sync also a
// synced offset (8) — then the payload. The CRC (Castagnoli, rotated and
// offset as in pebble/internal/crc) covers everything from the type byte to
// the end of the payload. A record is one full chunk, or first, middle…,
// last chunks. A block's tail too short for a header is zero padding.
//
// Invariants of the scan:
//   - A chunk is accepted only if its type is known, it fits its block and
//     the file, its log number (recyclable formats) is the file's, and its
//     CRC matches. A false positive would need a 32-bit CRC collision at a
//     position that also carries the right log number.
//   - After an unacceptable chunk the scan looks for the next acceptable one
//     at every later byte offset. If there is one, the bytes between are a
//     damaged range and the record they interrupted is lost; reading resumes
//     at the next first/full chunk. If there is none, the log ends there.
//   - The end is classified: "clean" (end of file or Pebble's EOF trailer at
//     a record boundary), "zeroed" (preallocated space), "recycled" (chunks
//     of an older log in a reused file: Pebble closed it without a trailer,
//     i.e. the process stopped hard) or "torn" (a record or chunk cut short:
//     a write interrupted by a crash, or a truncated file).
//   - Offsets of records are where their first chunk starts, so cutting the
//     file at a record's offset leaves a file that ends cleanly.
//   - A damage is Synced when a later chunk's synced offset lies beyond it:
//     the writer had fsynced it, so it held acknowledged writes. Pebble
//     applies the same rule but only looks at chunks in later 32 KiB blocks,
//     so damage inside the newest WAL's last block is taken for a torn tail
//     and every record after it is silently dropped (CheckNewestWAL).

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/batchrepr"
	"github.com/cockroachdb/pebble/v2/vfs"
)

const (
	walBlockSize     = 32 << 10
	walLegacyHeader  = 7
	walRecycleHeader = walLegacyHeader + 4
	walSyncHeader    = walRecycleHeader + 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func walCRC(b []byte) uint32 {
	c := crc32.Update(0, castagnoli, b)
	return (c>>15 | c<<17) + 0xa282ead8
}

// chunk positions
const (
	posFull = iota + 1
	posFirst
	posMiddle
	posLast
)

// walChunkType maps a chunk type byte to its position and header size.
func walChunkType(t byte) (pos, header int, ok bool) {
	switch {
	case t >= 1 && t <= 4:
		return int(t), walLegacyHeader, true
	case t >= 5 && t <= 8:
		return int(t - 4), walRecycleHeader, true
	case t >= 9 && t <= 12:
		return int(t - 8), walSyncHeader, true
	}
	return 0, 0, false
}

// WALRecord is one complete record: a Pebble batch.
type WALRecord struct {
	Offset int64
	Data   []byte
}

// WALDamage is a range of a WAL file that could not be read although intact
// records follow it.
type WALDamage struct {
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	// RecordOffset is where the record the damage interrupted began (the
	// damage offset itself when it hit a record's first chunk).
	RecordOffset int64  `json:"record_offset"`
	Reason       string `json:"reason"`
	// Synced is true when a later chunk of the file promises (its synced
	// offset, WAL-sync format) that the damaged bytes had been fsynced:
	// the damage is corruption of acknowledged data, not the unsynced tail
	// of a crash persisted out of order.
	Synced bool `json:"synced"`
}

// walPage is the granularity in which a crash can leave a WAL's size on the
// disk (the page size of the file systems Cairn runs on).
const walPage = 4096

// WAL end classifications.
const (
	WALEndClean    = "clean"
	WALEndZeroed   = "zeroed"
	WALEndRecycled = "recycled"
	WALEndTorn     = "torn"
)

// WALFile is what ScanWAL found in one log file.
type WALFile struct {
	Name    string `json:"name"`
	Num     uint64 `json:"num"`
	Size    int64  `json:"size"`
	Records int    `json:"records"` // complete records read
	// Events counts the e/ keys in those records; FirstSeq and LastSeq are
	// the lowest and highest of their seqs (0 when none).
	Events   int         `json:"events"`
	FirstSeq uint64      `json:"first_seq,omitempty"`
	LastSeq  uint64      `json:"last_seq,omitempty"`
	Damage   []WALDamage `json:"damage,omitempty"`
	End      string      `json:"end"`
	// EndOffset is where the readable log ends; for a torn end,
	// TornRecordOffset is where the incomplete record began.
	EndOffset        int64 `json:"end_offset"`
	TornRecordOffset int64 `json:"torn_record_offset,omitempty"`
	// Cut says the file was probably shortened by something other than a
	// crash: on the disk the store's WALs grow in zero-filled chunks
	// (zeroahead.go) and the file system persists a size in whole pages, so
	// a crash leaves a multiple of walPage; this one is not. What followed
	// the cut is gone, acknowledged writes possibly among it. It is a
	// finding of recover --check, not a reason for Open to refuse the
	// store: a WAL written by anything but the store (Pebble opened
	// directly) has any size.
	Cut bool `json:"cut,omitempty"`

	records []WALRecord
}

// walFileNum parses "000123.log".
func walFileNum(name string) (uint64, bool) {
	base, ok := strings.CutSuffix(name, ".log")
	if !ok || base == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(base, 10, 64)
	return n, err == nil
}

// ListWALs returns the WAL file names of the store in dir, oldest first.
func ListWALs(fs vfs.FS, dir string) ([]string, error) {
	if fs == nil {
		fs = vfs.Default
	}
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", dir, err)
	}
	var logs []string
	for _, n := range names {
		if _, ok := walFileNum(n); ok {
			logs = append(logs, n)
		}
	}
	slices.SortFunc(logs, func(a, b string) int {
		x, _ := walFileNum(a)
		y, _ := walFileNum(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	})
	return logs, nil
}

// ScanWAL reads one WAL file of dir.
func ScanWAL(fs vfs.FS, dir, name string) (*WALFile, error) {
	if fs == nil {
		fs = vfs.Default
	}
	num, ok := walFileNum(name)
	if !ok {
		return nil, fmt.Errorf("store: %s is not a WAL file name", name)
	}
	f, err := fs.Open(fs.PathJoin(dir, name))
	if err != nil {
		return nil, fmt.Errorf("store: open WAL: %w", err)
	}
	data, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("store: read WAL %s: %w", name, err)
	}
	w := &WALFile{Name: name, Num: num, Size: int64(len(data))}
	w.Cut = fs == vfs.Default && w.Size%walPage != 0
	w.scan(data)
	for _, r := range w.records {
		w.countEvents(r.Data)
	}
	return w, nil
}

// CompleteRecords returns the complete records, in file order.
func (w *WALFile) CompleteRecords() []WALRecord { return w.records }

// syncedAt returns the synced offset a WAL-sync chunk at off carries (0 for
// the other formats). The chunk must be acceptable (chunkAt).
func syncedAt(data []byte, off int) int64 {
	if _, h, _ := walChunkType(data[off+6]); h == walSyncHeader {
		return int64(binary.LittleEndian.Uint64(data[off+11:]))
	}
	return 0
}

// chunkAt returns the chunk at off if it is acceptable.
func chunkAt(data []byte, off int, logNum uint32) (pos int, payload []byte, next int, ok bool) {
	blockEnd := (off/walBlockSize + 1) * walBlockSize
	if off+walLegacyHeader > len(data) || off+walLegacyHeader > blockEnd {
		return 0, nil, 0, false
	}
	sum := binary.LittleEndian.Uint32(data[off:])
	length := int(binary.LittleEndian.Uint16(data[off+4:]))
	pos, header, ok := walChunkType(data[off+6])
	if !ok {
		return 0, nil, 0, false
	}
	end := off + header + length
	if end > len(data) || end > blockEnd {
		return 0, nil, 0, false
	}
	if header > walLegacyHeader && binary.LittleEndian.Uint32(data[off+7:]) != logNum {
		return 0, nil, 0, false
	}
	if walCRC(data[off+6:end]) != sum {
		return 0, nil, 0, false
	}
	return pos, data[off+header : end], end, true
}

// eofTrailerAt reports Pebble's end-of-log trailer (LogWriter.Close): an
// empty recyclable chunk header, CRC 0, carrying the next log number.
func eofTrailerAt(data []byte, off int, logNum uint32) bool {
	if off+walRecycleHeader > len(data) {
		return false
	}
	_, h, ok := walChunkType(data[off+6])
	return ok && h > walLegacyHeader && binary.LittleEndian.Uint16(data[off+4:]) == 0 &&
		binary.LittleEndian.Uint32(data[off+7:]) == logNum+1
}

func (w *WALFile) scan(data []byte) {
	logNum := uint32(w.Num)
	var rec []byte
	recStart := -1 // offset of the record being assembled, -1 when none
	header := 0    // header size of the file's chunk format, once seen
	off := 0
	for {
		if off >= len(data) {
			w.finish(WALEndClean, len(data), recStart)
			return
		}
		// A block tail too short for a header is padding.
		if rem := walBlockSize - off%walBlockSize; rem < walLegacyHeader || (rem < walSyncHeader && allZero(data[off:min(len(data), off+rem)])) {
			off += rem
			continue
		}
		pos, payload, next, ok := chunkAt(data, off, logNum)
		if ok {
			if header == 0 {
				_, header, _ = walChunkType(data[off+6])
			}
			if synced := syncedAt(data, off); synced > 0 {
				for i := range w.Damage {
					w.Damage[i].Synced = w.Damage[i].Synced || synced > w.Damage[i].Offset
				}
			}
			switch pos {
			case posFull, posFirst:
				if recStart >= 0 {
					// A record was interrupted without a damaged chunk:
					// impossible for Pebble's writer; treat as damage.
					w.Damage = append(w.Damage, WALDamage{Offset: int64(off), RecordOffset: int64(recStart), Reason: "record interrupted by a new record"})
				}
				recStart, rec = off, append(rec[:0], payload...)
			default:
				if recStart < 0 {
					// The continuation of a record whose start was damaged
					// (already reported) or precedes a resync point.
					off = next
					continue
				}
				rec = append(rec, payload...)
			}
			if pos == posFull || pos == posLast {
				w.records = append(w.records, WALRecord{Offset: int64(recStart), Data: append([]byte(nil), rec...)})
				w.Records++
				recStart = -1
			}
			off = next
			continue
		}
		// Not an acceptable chunk: the log ends here, or damage.
		resume := -1
		for q := off + 1; q+walLegacyHeader <= len(data); q++ {
			// Only chunks of the file's own format count: Pebble never mixes
			// formats in one file, and the log number of the recyclable
			// formats makes a chance match in the damaged bytes unlikely.
			if _, h, ok := walChunkType(data[q+6]); !ok || (header != 0 && h != header) {
				continue
			}
			if _, _, _, ok := chunkAt(data, q, logNum); ok {
				resume = q
				break
			}
		}
		if resume < 0 {
			w.finish(w.classifyEnd(data, off, logNum, recStart), off, recStart)
			return
		}
		d := WALDamage{Offset: int64(off), Length: int64(resume - off), RecordOffset: int64(off), Reason: "unreadable chunk (checksum, type or length)"}
		if recStart >= 0 {
			d.RecordOffset = int64(recStart)
		}
		w.Damage = append(w.Damage, d)
		recStart, rec = -1, rec[:0]
		off = resume
	}
}

func (w *WALFile) finish(end string, off, recStart int) {
	if recStart >= 0 && end != WALEndTorn {
		end = WALEndTorn
	}
	w.End, w.EndOffset = end, int64(off)
	if recStart >= 0 {
		w.TornRecordOffset = int64(recStart)
	} else if end == WALEndTorn {
		w.TornRecordOffset = int64(off)
	}
}

// classifyEnd names why the log stops at off (no acceptable chunk follows).
func (w *WALFile) classifyEnd(data []byte, off int, logNum uint32, recStart int) string {
	switch {
	case recStart >= 0:
		return WALEndTorn
	case eofTrailerAt(data, off, logNum):
		return WALEndClean
	case allZero(data[off:]):
		return WALEndZeroed
	}
	// A reused file: the rest is an older log's chunks.
	if off+walRecycleHeader <= len(data) {
		if _, h, ok := walChunkType(data[off+6]); ok && h > walLegacyHeader && binary.LittleEndian.Uint32(data[off+7:]) < logNum {
			return WALEndRecycled
		}
	}
	return WALEndTorn
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// countEvents adds the e/ keys of one batch record to the file's counts.
func (w *WALFile) countEvents(rec []byte) {
	_ = batchEvents(rec, func(seq uint64, _ []byte) {
		w.Events++
		if w.FirstSeq == 0 || seq < w.FirstSeq {
			w.FirstSeq = seq
		}
		w.LastSeq = max(w.LastSeq, seq)
	})
}

// batchEvents calls fn for every e/<seq> Set in a batch record and returns
// the number of writes it holds outside the log and the projections (which
// replaying its events re-derives): meta/ keys, unknown families. The value
// passed to fn aliases rec.
func batchEvents(rec []byte, fn func(seq uint64, val []byte)) (others int) {
	if _, ok := batchrepr.ReadHeader(rec); !ok {
		return 0
	}
	r := batchrepr.Read(rec)
	for {
		kind, key, val, ok, err := r.Next()
		if !ok || err != nil {
			return others
		}
		switch {
		case kind == pebble.InternalKeyKindLogData:
		case (kind == pebble.InternalKeyKindSet || kind == pebble.InternalKeyKindSetWithDelete) && len(key) == 10 && key[0] == famEvent && key[1] == '/':
			fn(binary.BigEndian.Uint64(key[2:]), val)
		case len(key) >= 2 && key[1] == '/' && knownFamily(key[0]):
		default:
			others++
		}
	}
}
