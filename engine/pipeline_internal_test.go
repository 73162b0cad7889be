package engine

import (
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestPipelineByteBound: while the waiting steps hold more than maxBytes,
// add blocks until a step completes; a step larger than the bound is let in
// alone.
func TestPipelineByteBound(t *testing.T) {
	p := newPipeline(100, 1000)
	s1 := p.addSized(600, func(error) {})
	s2 := p.addSized(400, func(error) {})
	added := make(chan *step)
	go func() { added <- p.addSized(10, func(error) {}) }()
	select {
	case <-added:
		t.Fatal("a step went in over the byte bound")
	case <-time.After(50 * time.Millisecond):
	}
	p.complete(s1, nil)
	s3 := <-added
	p.complete(s2, nil)
	p.complete(s3, nil)
	if p.bytes != 0 {
		t.Fatalf("bytes = %d after everything completed", p.bytes)
	}
	huge := p.addSized(5000, func(error) {})
	p.complete(huge, nil)
	p.close()
	if p.addSized(1, func(error) {}) != nil {
		t.Fatal("add after close")
	}
}

func TestRetryableAccept(t *testing.T) {
	for _, err := range []error{syscall.EMFILE, syscall.ENFILE, &net.OpError{Op: "accept", Err: os.NewSyscallError("accept4", syscall.EMFILE)}} {
		if !retryableAccept(err) {
			t.Errorf("%v not retried", err)
		}
	}
	for _, err := range []error{net.ErrClosed, syscall.EINVAL} {
		if retryableAccept(err) {
			t.Errorf("%v retried", err)
		}
	}
}
