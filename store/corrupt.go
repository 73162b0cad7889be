package store

import "errors"

// corruptionDetail returns the details Pebble attaches to a corruption error
// without putting them in its message — for a WAL, "replaying wal N, offset
// (dir/N.log: OFFSET)", the file and offset where replay stopped — joined
// by "; ", or "".
func corruptionDetail(err error) string {
	var out string
	for e := err; e != nil; e = errors.Unwrap(e) {
		d, ok := e.(interface{ ErrorDetail() string })
		if !ok || d.ErrorDetail() == "" {
			continue
		}
		if out != "" {
			out += "; "
		}
		out += d.ErrorDetail()
	}
	return out
}
