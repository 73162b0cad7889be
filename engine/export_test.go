package engine

// ConnectWorkers reports how many CONNECT workers are alive (connectpool.go).
func ConnectWorkers(b *Broker) int { return b.connectW.workers() }

// SetUnlinkPause makes unlinkSession call f between removing a session's
// subscriptions and removing the session (nil: no pause).
func SetUnlinkPause(f func(client string)) {
	if f == nil {
		unlinkPause.Store(nil)
		return
	}
	unlinkPause.Store(&f)
}

// RetainedBytes is the memory estimate of the retained set that
// MaintOptions.RetainedLimitBytes bounds (retainlimit.go).
func RetainedBytes(b *Broker) int64 { return b.retained.Bytes() }
