package store

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key schema (see README.md for the full table).
//
// Every key starts with a one-letter family and '/'. Integers are big-endian
// so that byte order is numeric order. A client id is written as a 2-byte
// big-endian length followed by its bytes: client ids may contain '/' (or any
// byte), and the length prefix keeps "q/<a>" from being a prefix of
// "q/<a/b>" — every per-client prefix selects exactly one client. MQTT caps
// a client id at 65535 bytes, so 2 bytes always suffice.
const (
	famSession  = 's' // s/<client>                    Session (msgpack)
	famSub      = 'u' // u/<client><filter>            Subscription (msgpack)
	famMsg      = 'm' // m/<msgid:8>                   Message body (msgpack)
	famRef      = 'c' // c/<msgid:8>                   remaining references, uvarint; absent = 1
	famQueue    = 'q' // q/<client><seq:8>             QueueEntry (msgpack)
	famQInfo    = 'n' // n/<client>                    QueueInfo (4 uvarints)
	famInbound  = 'i' // i/<client><pid:2>             empty
	famRetained = 'r' // r/<topic>                     Message (msgpack)
	famExpiry   = 'x' // x/<expiresAt:8><topic>        empty
	famQExpiry  = 'y' // y/<expiresAt:8><client><seq:8> empty: queue entries whose message expires
	famEvent    = 'e' // e/<seq:8>                     format byte + Event (msgpack)
)

var (
	keyVersion = []byte("meta/version")
	keySeq     = []byte("meta/seq") // LastSeq floor, written by TruncateLog
)

// errKeyShape reports a key that does not parse; it means corruption or a
// bug, never a user error.
var errKeyShape = errors.New("malformed key")

func appendFamily(dst []byte, fam byte) []byte {
	return append(dst, fam, '/')
}

func appendClient(dst []byte, client string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(client)))
	return append(dst, client...)
}

func appendU64(dst []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(dst, v) }

// checkClient rejects ids that cannot be length-prefixed in 2 bytes.
func checkClient(client string) error {
	if client == "" {
		return errors.New("empty client id")
	}
	if len(client) > 0xFFFF {
		return fmt.Errorf("client id of %d bytes exceeds 65535", len(client))
	}
	return nil
}

func sessionKey(dst []byte, client string) []byte {
	return appendClient(appendFamily(dst, famSession), client)
}

// clientPrefix is the prefix of every key of family fam owned by client.
func clientPrefix(dst []byte, fam byte, client string) []byte {
	return appendClient(appendFamily(dst, fam), client)
}

func subKey(dst []byte, client, filter string) []byte {
	return append(clientPrefix(dst, famSub, client), filter...)
}

func msgKey(dst []byte, id uint64) []byte { return appendU64(appendFamily(dst, famMsg), id) }
func refKey(dst []byte, id uint64) []byte { return appendU64(appendFamily(dst, famRef), id) }

func queueKey(dst []byte, client string, seq uint64) []byte {
	return appendU64(clientPrefix(dst, famQueue, client), seq)
}

func qinfoKey(dst []byte, client string) []byte { return clientPrefix(dst, famQInfo, client) }

func inboundKey(dst []byte, client string, pid uint16) []byte {
	return binary.BigEndian.AppendUint16(clientPrefix(dst, famInbound, client), pid)
}

func retainedKey(dst []byte, topic string) []byte {
	return append(appendFamily(dst, famRetained), topic...)
}

func expiryKey(dst []byte, expiresAt int64, topic string) []byte {
	return append(appendU64(appendFamily(dst, famExpiry), uint64(expiresAt)), topic...)
}

func queueExpiryKey(dst []byte, expiresAt int64, client string, seq uint64) []byte {
	return appendU64(appendClient(appendU64(appendFamily(dst, famQExpiry), uint64(expiresAt)), client), seq)
}

// splitQueueExpiry parses a y/ key.
func splitQueueExpiry(key []byte) (expiresAt int64, client string, seq uint64, err error) {
	at, rest, err := splitU64(key)
	if err != nil || len(rest) < 10 {
		return 0, "", 0, fmt.Errorf("%w %q", errKeyShape, key)
	}
	n := int(binary.BigEndian.Uint16(rest))
	if len(rest) != 2+n+8 {
		return 0, "", 0, fmt.Errorf("%w %q", errKeyShape, key)
	}
	return int64(at), string(rest[2 : 2+n]), binary.BigEndian.Uint64(rest[2+n:]), nil
}

func eventKey(dst []byte, seq uint64) []byte { return appendU64(appendFamily(dst, famEvent), seq) }

// familyPrefix is the 2-byte prefix shared by every key of a family.
func familyPrefix(fam byte) []byte { return []byte{fam, '/'} }

// prefixEnd returns the smallest key greater than every key with prefix p,
// for use as an iterator UpperBound.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// splitClient parses the client component of a per-client key, returning
// the client id and the rest of the key.
func splitClient(key []byte) (client string, rest []byte, err error) {
	if len(key) < 4 || key[1] != '/' {
		return "", nil, fmt.Errorf("%w %q", errKeyShape, key)
	}
	n := int(binary.BigEndian.Uint16(key[2:4]))
	if len(key) < 4+n {
		return "", nil, fmt.Errorf("%w %q", errKeyShape, key)
	}
	return string(key[4 : 4+n]), key[4+n:], nil
}

// splitU64 parses the 8-byte big-endian integer that follows the family
// prefix (m/, c/, e/, x/), returning it and the rest of the key.
func splitU64(key []byte) (uint64, []byte, error) {
	if len(key) < 10 || key[1] != '/' {
		return 0, nil, fmt.Errorf("%w %q", errKeyShape, key)
	}
	return binary.BigEndian.Uint64(key[2:10]), key[10:], nil
}

// queueKeySeq parses the seq at the end of a q/ key.
func queueKeySeq(key []byte) (string, uint64, error) {
	client, rest, err := splitClient(key)
	if err != nil || len(rest) != 8 {
		return "", 0, fmt.Errorf("%w %q", errKeyShape, key)
	}
	return client, binary.BigEndian.Uint64(rest), nil
}
