package bench

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (not its metadata unless needed to read the
// data back), as a write-ahead log's sync does.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
