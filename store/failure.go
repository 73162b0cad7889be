package store

// Failed returns a channel that is closed when the store fails (a WAL write
// or fsync error; see commit.go invariant 5): from then on it acknowledges
// nothing, and the process should close its listeners and exit so that a
// supervisor restarts it over what reached the disk. A read-only store never
// fails (the channel is nil).
func (s *Store) Failed() <-chan struct{} { return s.pipe.failedCh }

// Err returns the failure (wrapping ErrFailed), or nil while the store is
// healthy.
func (s *Store) Err() error { return s.pipe.failure() }
