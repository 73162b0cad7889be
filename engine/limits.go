package engine

import (
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cairn-mqtt/cairn/engine/listen"
	"github.com/cairn-mqtt/cairn/engine/loggate"
	"github.com/cairn-mqtt/cairn/engine/session"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// Limits: what one client may cost the broker, and what it is told when it
// asks for more. Every limit hit is counted in SecurityStats and logged.
//
//	limit                     answer
//	connections (total, /IP)  TCP reset at accept, before any byte or TLS handshake
//	CONNECT deadline          connection closed (Options.ConnectTimeout)
//	packet size               5.0: DISCONNECT 0x95, 3.x: close (Options.MaxPacketSize)
//	client id length          CONNACK 0x02 / 0x85 (Options.MaxClientIDLen; 23 for 3.1)
//	topic length and levels   PUBLISH: 5.0 PUBACK/PUBREC 0x90 (QoS 0: dropped), 3.x: close;
//	                          SUBSCRIBE: SUBACK 0x8F / 0x80; will: CONNACK 0x03 / 0x90
//	subscriptions per client  SUBACK 0x97 / 0x80 for each filter beyond the limit
//	inbound in flight         5.0: DISCONNECT 0x93 beyond the Receive Maximum announced in
//	                          CONNACK (inbound5.go); every version: the reader pauses while
//	                          the client's messages awaiting their commit exceed MaxInboundBytes
//	publish rate              the reader pauses until the client is within its rate (TCP
//	                          back-pressure: nothing is lost, the client is slowed down)
//	unread acknowledgements   the reader pauses while maxQueuedControl packets wait for the writer
//	outbound queue            MaxQueuedMemory / MaxQueuedQoS0 messages and MaxQueuedBytes in
//	                          memory per client; a persistent session's overflow stays on
//	                          disk, a clean session's (and QoS 0) is dropped and counted
//
// Invariants:
//   - Each check happens before the packet has any effect: a refused
//     PUBLISH is neither stored, retained nor routed; a refused
//     subscription is not in the trie.
//   - The limits bound memory per connection; together with the connection
//     limits they bound the broker's.

// Limits are the security limits of a broker. Zero values take the defaults
// of DefaultLimits; a negative value turns a limit off.
type Limits struct {
	// MaxConnections bounds open connections over all listeners.
	MaxConnections int
	// MaxConnectionsPerIP bounds open connections from one IP address.
	MaxConnectionsPerIP int
	// MaxTopicLength bounds topic names and filters, in bytes.
	MaxTopicLength int
	// MaxTopicLevels bounds the levels of topic names and filters.
	MaxTopicLevels int
	// MaxSubscriptions bounds one client's subscriptions.
	MaxSubscriptions int
	// MaxQueuedBytes bounds the bytes of messages held in memory waiting to
	// be sent to one client (beside the message counts MaxQueuedMemory and
	// MaxQueuedQoS0).
	MaxQueuedBytes int
	// MaxInboundBytes bounds the bytes of one client's messages waiting for
	// their commit; its reader pauses beyond it.
	MaxInboundBytes int
	// PublishRate bounds one client's PUBLISH packets per second (0 or
	// negative: no bound); PublishBurst is how many it may send at once
	// (default: one second's worth).
	PublishRate  float64
	PublishBurst int
}

// DefaultLimits returns the defaults.
func DefaultLimits() Limits {
	return Limits{
		MaxConnections:      16384,
		MaxConnectionsPerIP: 4096,
		MaxTopicLength:      65535,
		MaxTopicLevels:      128,
		MaxSubscriptions:    1000,
		MaxQueuedBytes:      8 << 20,
		MaxInboundBytes:     16 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	def := func(v *int, dv int) {
		switch {
		case *v == 0:
			*v = dv
		case *v < 0:
			*v = 0 // off
		}
	}
	def(&l.MaxConnections, d.MaxConnections)
	def(&l.MaxConnectionsPerIP, d.MaxConnectionsPerIP)
	def(&l.MaxTopicLength, d.MaxTopicLength)
	def(&l.MaxTopicLevels, d.MaxTopicLevels)
	def(&l.MaxSubscriptions, d.MaxSubscriptions)
	def(&l.MaxQueuedBytes, d.MaxQueuedBytes)
	def(&l.MaxInboundBytes, d.MaxInboundBytes)
	if l.PublishRate < 0 {
		l.PublishRate = 0
	}
	if l.PublishRate > 0 && l.PublishBurst <= 0 {
		l.PublishBurst = max(int(l.PublishRate), 1)
	}
	return l
}

// SecurityStats count refusals: authentication, authorization and limits.
type SecurityStats struct {
	TLSHandshakeFailed     atomic.Int64 // handshake failed (bad or missing client certificate, say)
	ConnectTimeouts        atomic.Int64 // no CONNECT within the deadline
	PacketTooLarge         atomic.Int64 // packets over the maximum packet size
	ClientIDRejected       atomic.Int64 // client ids too long or not UTF-8
	AuthBadCredentials     atomic.Int64 // unknown user or wrong password
	AuthNotAuthorized      atomic.Int64 // anonymous refused, session owned by another user
	AuthRateLimited        atomic.Int64 // refused by the failed-login limit
	PublishDenied          atomic.Int64 // PUBLISH refused by the ACL
	SubscribeDenied        atomic.Int64 // subscriptions refused by the ACL
	ReceiveDenied          atomic.Int64 // deliveries withheld by the ACL
	WillDenied             atomic.Int64 // wills refused by the ACL (at CONNECT or when due)
	TopicRejected          atomic.Int64 // topics or filters over the length or level limit
	SubscriptionsExceeded  atomic.Int64 // subscriptions beyond MaxSubscriptions
	ReceiveMaximumExceeded atomic.Int64 // 5.0 clients with too many QoS 1/2 in flight
	PublishThrottled       atomic.Int64 // PUBLISH packets that waited for the rate limit
	QueueFull              atomic.Int64 // deliveries dropped: a clean session's (or QoS 0) queue full
	AcceptErrors           atomic.Int64 // accept failures retried (out of file descriptors, say)
	ReaderPaused           atomic.Int64 // readers paused: the client does not read its acknowledgements
}

// Counter is one named counter value.
type Counter struct {
	Name  string
	Help  string
	Value int64
}

// SecurityCounters returns every security counter, with the connection
// limiter's, by name (for metrics).
func (b *Broker) SecurityCounters() []Counter {
	s := &b.stats.Security
	ls := b.sec.connLimit.Stats()
	return []Counter{
		{"connections_rejected_total_limit", "connections reset: MaxConnections open", int64(ls.RejectedTotal)},
		{"connections_rejected_ip_limit", "connections reset: MaxConnectionsPerIP open from the address", int64(ls.RejectedPerIP)},
		{"tls_handshake_failed", "TLS handshakes that failed", s.TLSHandshakeFailed.Load()},
		{"connect_timeouts", "connections closed without CONNECT in time", s.ConnectTimeouts.Load()},
		{"packet_too_large", "packets over the maximum packet size", s.PacketTooLarge.Load()},
		{"client_id_rejected", "CONNECTs refused for their client id", s.ClientIDRejected.Load()},
		{"auth_bad_credentials", "CONNECTs with an unknown user or a wrong password", s.AuthBadCredentials.Load()},
		{"auth_not_authorized", "CONNECTs refused: anonymous, or the session belongs to another user", s.AuthNotAuthorized.Load()},
		{"auth_rate_limited", "CONNECTs refused by the failed-login limit", s.AuthRateLimited.Load()},
		{"acl_publish_denied", "PUBLISH packets refused by the ACL", s.PublishDenied.Load()},
		{"acl_subscribe_denied", "subscriptions refused by the ACL", s.SubscribeDenied.Load()},
		{"acl_receive_denied", "deliveries withheld by the ACL", s.ReceiveDenied.Load()},
		{"acl_will_denied", "wills refused by the ACL", s.WillDenied.Load()},
		{"topic_rejected", "topics and filters over the length or level limit", s.TopicRejected.Load()},
		{"subscriptions_exceeded", "subscriptions beyond the per-client limit", s.SubscriptionsExceeded.Load()},
		{"receive_maximum_exceeded", "5.0 clients disconnected for exceeding the Receive Maximum", s.ReceiveMaximumExceeded.Load()},
		{"publish_throttled", "PUBLISH packets delayed by the publish rate limit", s.PublishThrottled.Load()},
		{"queue_full_dropped", "deliveries dropped because a clean session's queue was full", s.QueueFull.Load()},
		{"accept_errors", "accept failures retried", s.AcceptErrors.Load()},
		{"reader_paused", "readers paused because their client does not read its acknowledgements", s.ReaderPaused.Load()},
	}
}

// topicOK checks a topic name or filter (for a shared one, its filter part)
// against the length and level limits.
func (b *Broker) topicOK(t string) bool {
	l := &b.opts.Limits
	if l.MaxTopicLength > 0 && len(t) > l.MaxTopicLength {
		return false
	}
	if strings.HasPrefix(t, "$share/") {
		if _, f, _, err := wire.ParseSharedFilter(t); err == nil {
			t = f
		}
	}
	return l.MaxTopicLevels <= 0 || strings.Count(t, "/") < l.MaxTopicLevels
}

// admitFilter applies the limits and the ACL to one subscription of a
// SUBSCRIBE (already validated). ok false gives the SUBACK code.
func (c *conn) admitFilter(filter string) (code wire.ReasonCode, ok bool) {
	b := c.b
	if !b.topicOK(filter) {
		b.stats.Security.TopicRejected.Add(1)
		c.logRefusal("subscription refused: topic filter over the length or level limit", "len", len(filter),
			"max_len", b.opts.Limits.MaxTopicLength, "max_levels", b.opts.Limits.MaxTopicLevels)
		return c.failCode(wire.TopicFilterInvalid), false
	}
	if !c.maySubscribe(filter) {
		b.stats.Security.SubscribeDenied.Add(1)
		c.logRefusal("subscription refused: not authorized", "filter", filter, "user", c.sec.user)
		return c.failCode(wire.NotAuthorized), false
	}
	if max := b.opts.Limits.MaxSubscriptions; max > 0 {
		n, has := b.subs.ClientHas(c.sess.id, filter)
		if !has && n >= max {
			b.stats.Security.SubscriptionsExceeded.Add(1)
			c.logRefusal("subscription refused: subscription limit reached", "filter", filter, "max", max)
			return c.failCode(wire.QuotaExceeded), false
		}
	}
	return 0, true
}

// admitSecurity runs the security checks of a PUBLISH from the client
// before it has any effect (after admitPublish resolved its topic alias and
// counted it against the Receive Maximum): the publish rate, the topic
// limits and the ACL. ok false means the packet was answered (or dropped)
// here; keep false that the connection is ending.
func (c *conn) admitSecurity(p *wire.Publish) (ok, keep bool) {
	b := c.b
	if !c.throttle() {
		return false, false
	}
	if !b.topicOK(p.Topic) {
		b.stats.Security.TopicRejected.Add(1)
		if c.version != wire.V5 {
			return false, c.protocolError(wire.TopicNameInvalid, "topic name over the length or level limit",
				"len", len(p.Topic), "max_len", b.opts.Limits.MaxTopicLength, "max_levels", b.opts.Limits.MaxTopicLevels)
		}
		c.logRefusal("PUBLISH refused: topic name over the length or level limit", "len", len(p.Topic), "qos", p.QoS)
		c.answerPublish(p, wire.TopicNameInvalid, "topic name over the length or level limit")
		return false, true
	}
	if !c.mayPublish(p.Topic) {
		b.stats.Security.PublishDenied.Add(1)
		c.logRefusal("PUBLISH refused: not authorized", "topic", p.Topic, "user", c.sec.user, "qos", p.QoS, "retain", p.Retain)
		c.answerPublish(p, wire.NotAuthorized, "not authorized")
		return false, true
	}
	return true, true
}

// answerPublish acknowledges a refused PUBLISH, in pipeline order: 3.x has
// no failure acknowledgement, so it gets a plain PUBACK / PUBREC (the
// message is dropped); 5.0 gets code (and why as the Reason String, unless
// the client asked for no problem information). QoS 0 gets nothing.
func (c *conn) answerPublish(p *wire.Publish, code wire.ReasonCode, why string) {
	if p.QoS == 0 {
		return
	}
	// The flow ends here: the message no longer counts against the
	// Receive Maximum (inbound5.go).
	if p.QoS == 1 {
		c.inboundAcked(1)
	} else if c.version == wire.V5 {
		c.inboundReleased(p.PacketID)
	}
	if c.version != wire.V5 {
		code = wire.Success
	}
	ack := &wire.Ack{Kind: wire.PUBACK, PacketID: p.PacketID, ReasonCode: code, Props: c.reasonProps(why)}
	if p.QoS == 2 {
		// A 3.x client answers PUBREC with PUBREL, which finds no packet
		// id and gets its PUBCOMP; a 5.0 client ends the flow at a PUBREC
		// with a failure code.
		ack.Kind = wire.PUBREC
	}
	if st := c.pl.add(func(error) { c.send(ack) }); st != nil {
		c.pl.complete(st, nil)
	}
}

// throttle waits until the client's publish rate allows one more PUBLISH.
// It returns false if the connection ended meanwhile.
func (c *conn) throttle() bool {
	l := &c.b.opts.Limits
	if l.PublishRate <= 0 || c.internal() {
		return true
	}
	r := &c.sec.rate
	now := time.Now()
	if r.last.IsZero() {
		r.tokens, r.last = float64(l.PublishBurst), now
	}
	r.tokens = min(r.tokens+now.Sub(r.last).Seconds()*l.PublishRate, float64(l.PublishBurst))
	r.last = now
	if r.tokens >= 1 {
		r.tokens--
		return true
	}
	c.b.stats.Security.PublishThrottled.Add(1)
	wait := time.Duration((1 - r.tokens) / l.PublishRate * float64(time.Second))
	if !r.logged {
		r.logged = true
		c.log.Info("publish rate limit reached; slowing the client down", "rate", l.PublishRate, "burst", l.PublishBurst)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.done:
		return false
	}
	r.tokens, r.last = 0, time.Now()
	return true
}

// rateState is a connection's publish token bucket (reader goroutine only).
type rateState struct {
	tokens float64
	last   time.Time
	logged bool
}

// queuePage is how many queued messages the writer reads from the store at
// once: a full page (storePageSize) of messages the size of the last page's,
// or fewer, so that a page stays near MaxQueuedBytes. The first page assumes
// maximum-size messages.
func (c *conn) queuePage() int { return c.b.pageFor(c.sec.pageAvg) }

// pageFor is the number of queued messages to read at once when they
// average avg bytes (0: unknown, so the maximum packet size): a full page
// (storePageSize), or fewer, so that a page stays near MaxQueuedBytes.
func (b *Broker) pageFor(avg int) int {
	qb := b.opts.Limits.MaxQueuedBytes
	if qb <= 0 {
		return storePageSize
	}
	if avg <= 0 {
		avg = int(max(b.opts.MaxPacketSize, 1))
	}
	return max(1, min(storePageSize, qb/avg))
}

// pageAverage is the average size of a page's messages: at least 1, or 0
// for an empty page (nothing learned).
func pageAverage(page []store.QueuedMessage) int {
	if len(page) == 0 {
		return 0
	}
	n := 0
	for _, q := range page {
		n += session.Size(q.Msg)
	}
	return max(n/len(page), 1)
}

// pageRead records the size of the messages of a page read from the store.
func (c *conn) pageRead(page []store.QueuedMessage) {
	if avg := pageAverage(page); avg > 0 {
		c.sec.pageAvg = avg
	}
}

// retryableAccept reports whether an accept error is a shortage (of file
// descriptors, buffers or memory) that passes as connections close: the
// listener waits and tries again rather than giving up.
func retryableAccept(err error) bool {
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// brokerSecurity is the broker's share of the security machinery.
type brokerSecurity struct {
	connLimit *listen.ConnLimiter
	refused   loggate.Gate // the log line of connections the limits refuse
	reloaders []reloader
}

// logConnRefused logs connections the connection limits refused (gated:
// a flood gets a line per loggate.Every, with its count).
func (b *Broker) logConnRefused(ip netip.Addr, perIP bool) {
	n, ok := b.sec.refused.Pass(b.now())
	if !ok {
		return
	}
	l := &b.opts.Limits
	if perIP {
		b.log.Warn("connections refused: too many from one address", "remote_ip", ip.String(), "refused", n, "max_connections_per_ip", l.MaxConnectionsPerIP)
		return
	}
	b.log.Warn("connections refused: the broker's connection limit is reached", "remote_ip", ip.String(), "refused", n, "max_connections", l.MaxConnections)
}

type reloader struct {
	name string
	f    func() error
}

// connSecurity is a connection's share.
type connSecurity struct {
	lis     *Listener
	user    string // authenticated user ("" anonymous)
	certID  string // verified client certificate identity, when the listener maps it
	rate    rateState
	pageAvg int // writer: average message size of the last page read from the store
	refused int // refusals logged at info level (reader goroutine)
}

// refusalLogs is how many refusals of single subscriptions or messages a
// connection logs at info level; the rest go to debug (they are all
// counted), so that a subscribe bomb cannot flood the log.
const refusalLogs = 10

// logRefusal logs the refusal of one subscription or message.
func (c *conn) logRefusal(msg string, args ...any) {
	c.sec.refused++
	switch {
	case c.sec.refused < refusalLogs:
		c.log.Info(msg, args...)
	case c.sec.refused == refusalLogs:
		c.log.Info(msg+" (further refusals on this connection are logged at debug level)", args...)
	default:
		c.log.Debug(msg, args...)
	}
}

// maxQueuedControl bounds the packets (acknowledgements, PINGRESP, ...)
// waiting for a connection's writer. They are answers to the client's own
// packets, so a client that sends without reading what it is sent is held
// back here: its reader stops taking packets until the writer catches up.
const maxQueuedControl = 1024

// waitWriter pauses the reader while the writer has maxQueuedControl
// packets or more to write. It returns false if the connection ended.
func (c *conn) waitWriter() bool {
	logged := false
	for {
		c.wmu.Lock()
		n := len(c.ctl)
		c.wmu.Unlock()
		if n < maxQueuedControl {
			return true
		}
		if !logged {
			logged = true
			c.b.stats.Security.ReaderPaused.Add(1)
			c.log.Debug("client does not read its acknowledgements; pausing its reader", "queued", n)
		}
		select {
		case <-c.done:
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// countWireError counts the decoding errors that are limits.
func (c *conn) countWireError(we *wire.Error) {
	if we.Code == wire.PacketTooLarge {
		c.b.stats.Security.PacketTooLarge.Add(1)
	}
}
