package engine

import (
	"log/slog"
	"time"
)

// Options are the broker's limits and behaviour. Zero values take the
// defaults of DefaultOptions.
type Options struct {
	// MaxInflight is the in-flight window of QoS 1/2 messages toward each
	// client (a 5.0 client's Receive Maximum lowers it).
	MaxInflight int
	// MaxQueuedMemory is how many QoS 1/2 messages a session holds in memory
	// waiting to be sent; a persistent session's overflow stays on disk, a
	// clean session's is dropped and counted.
	MaxQueuedMemory int
	// MaxQueuedQoS0 bounds the QoS 0 messages waiting for one client.
	MaxQueuedQoS0 int
	// MaxPacketSize is the largest packet accepted from a client.
	MaxPacketSize uint32
	// ConnectTimeout is how long a new socket may take to send CONNECT.
	ConnectTimeout time.Duration
	// MaxPipeline bounds the packets of one connection waiting for their
	// commit; the connection's reader pauses beyond it (back-pressure).
	MaxPipeline int
	// MaxClientIDLen bounds client identifiers.
	MaxClientIDLen int
	// WriteTimeout closes a connection whose socket accepts nothing for
	// this long.
	WriteTimeout time.Duration
	// Auth authenticates clients and authorizes what they do (auth.Policy
	// is the file-based one); nil admits everyone to everything.
	Auth Authorizer
	// Security limits: see limits.go for what each one answers.
	Limits Limits
	Logger *slog.Logger
	// Now is the clock (tests inject one).
	Now func() time.Time

	// Features are the MQTT 5.0 capabilities and limits (features.go).
	Features Features
	// EnhancedAuth are the MQTT 5.0 enhanced authentication methods, by
	// method name (enhauth.go). A CONNECT naming another method is refused
	// with CONNACK 0x8C.
	EnhancedAuth map[string]EnhancedAuth
	// Observer, if set, receives latency measurements (counters.go).
	Observer Observer
	// Maint configures retained TTLs, per-session queue limits and the
	// compaction task (compact.go).
	Maint MaintOptions
}

// DefaultOptions returns the defaults.
func DefaultOptions() Options {
	return Options{
		MaxInflight:     64,
		MaxQueuedMemory: 1024,
		MaxQueuedQoS0:   1024,
		MaxPacketSize:   1 << 20,
		ConnectTimeout:  10 * time.Second,
		MaxPipeline:     1024,
		MaxClientIDLen:  256,
		WriteTimeout:    30 * time.Second,
		Limits:          DefaultLimits(),
	}
}

func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.MaxInflight <= 0 {
		o.MaxInflight = d.MaxInflight
	}
	if o.MaxInflight > 65535 {
		o.MaxInflight = 65535
	}
	if o.MaxQueuedMemory <= 0 {
		o.MaxQueuedMemory = d.MaxQueuedMemory
	}
	if o.MaxQueuedQoS0 <= 0 {
		o.MaxQueuedQoS0 = d.MaxQueuedQoS0
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = d.MaxPacketSize
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = d.ConnectTimeout
	}
	if o.MaxPipeline <= 0 {
		o.MaxPipeline = d.MaxPipeline
	}
	if o.MaxClientIDLen <= 0 {
		o.MaxClientIDLen = d.MaxClientIDLen
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = d.WriteTimeout
	}
	o.Limits = o.Limits.withDefaults()
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.Features = o.Features.withDefaults()
	o.Maint = o.Maint.withDefaults(o.Logger)
	return o
}
