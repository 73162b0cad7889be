package store

import "strconv"

var kindNames = [...]string{
	EvSessionOpened:   "session-opened",
	EvSessionClosed:   "session-closed",
	EvSessionDropped:  "session-dropped",
	EvSessionExpired:  "session-expired",
	EvWillFired:       "will-fired",
	EvSubscribed:      "subscribed",
	EvUnsubscribed:    "unsubscribed",
	EvPublished:       "published",
	EvAcked:           "acked",
	EvPubrecReceived:  "pubrec-received",
	EvReleased:        "released",
	EvDropped:         "dropped",
	EvRetainedExpired: "retained-expired",
	EvDelivered:       "delivered",
	EvBodyCollected:   "body-collected",
}

// String names the kind for logs and `cairn inspect`.
func (k EventKind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}
