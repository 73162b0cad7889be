package storetest

import (
	"bytes"
	"strings"
	"sync"
)

// LogBuffer is a log sink that the goroutines of a store or broker under
// test may write to while the test reads it.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Count returns how often s occurs in what was written so far.
func (l *LogBuffer) Count(s string) int { return strings.Count(l.String(), s) }
