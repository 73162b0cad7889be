package engine

import (
	"time"

	"github.com/cairn-mqtt/cairn/engine/session"
	"github.com/cairn-mqtt/cairn/store"
	"github.com/cairn-mqtt/cairn/wire"
)

// storedProps turns a PUBLISH's 5.0 properties into what is stored with the
// message: without the topic alias and subscription identifiers (they belong
// to one connection and one subscriber), and with the message expiry turned
// into an absolute deadline so that time spent queued — or with the broker
// down — counts.
func storedProps(p *wire.Properties, now time.Time) (enc []byte, expiresAt int64) {
	cp := *p
	cp.TopicAlias = nil
	cp.SubscriptionIDs = nil
	if cp.MessageExpiry != nil {
		expiresAt = now.Add(time.Duration(*cp.MessageExpiry) * time.Second).UnixNano()
		cp.MessageExpiry = nil
	}
	enc = wire.AppendProperties(nil, &cp)
	if len(enc) <= 1 { // just the zero length: nothing worth storing
		return nil, expiresAt
	}
	return enc, expiresAt
}

// expired reports whether a message's expiry has passed.
func expired(m *store.Message, now time.Time) bool {
	return m.ExpiresAt != 0 && m.ExpiresAt <= now.UnixNano()
}

// deliveryProps builds the properties of a delivery to a 5.0 client: the
// stored ones, the subscription identifiers of the matching subscriptions,
// and the remaining expiry interval.
func deliveryProps(d session.Delivery, now time.Time) *wire.Properties {
	var p *wire.Properties
	if len(d.Msg.Props) > 0 {
		dp, err := wire.DecodeProperties(d.Msg.Props)
		if err == nil && dp != nil {
			p = dp
		}
	}
	if len(d.SubIDs) > 0 {
		if p == nil {
			p = &wire.Properties{}
		}
		p.SubscriptionIDs = d.SubIDs
	}
	if d.Msg.ExpiresAt != 0 {
		if p == nil {
			p = &wire.Properties{}
		}
		var left uint32 // an expired message that is resent has 0 left
		if wait := time.Duration(d.Msg.ExpiresAt - now.UnixNano()); wait > 0 {
			left = uint32((wait + time.Second - 1) / time.Second)
		}
		p.MessageExpiry = &left
	}
	return p
}
