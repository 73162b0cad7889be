// Package auth holds Cairn's client authentication and authorization
// building blocks: password files, ACL files and a limiter of failed logins.
// It knows nothing of sockets or MQTT packets; the engine calls it from its
// CONNECT, PUBLISH, SUBSCRIBE and delivery paths.
//
// # Password files
//
// A password file has one "user:hash" line per user; blank lines and lines
// starting with '#' are ignored. The hash is an argon2id PHC string
// ("$argon2id$v=19$m=19456,t=2,p=1$salt$key", salt and key in unpadded
// standard base64) or a bcrypt hash ("$2a$", "$2b$" or "$2y$"). New hashes
// (HashPassword, AddUser) are argon2id. A user name is non-empty valid UTF-8
// without ':', control characters or leading/trailing white space, and does
// not start with '#'.
//
// [Passwords.Check] takes the same time for an unknown user as for a known
// one (it verifies against a dummy hash with the most common parameters of
// the file) and bounds the number of hashes computed at once, so that a
// connect storm cannot exhaust memory (an argon2id check allocates its m
// KiB).
//
// # ACL files
//
// An ACL file is mosquitto-like:
//
//	# Rules before the first "user" line apply to every client.
//	topic read public/#
//	# alice's rules, up to the next "user" line:
//	user alice
//	topic readwrite alice/#
//	topic write cmd/%c/#
//	# A pattern applies to every client, wherever the line is.
//	pattern read devices/%u/#
//
// "topic [read|write|readwrite] FILTER" grants access to FILTER (readwrite
// when the access word is left out); "pattern" is the same for every client.
// In any rule, a level that is exactly %u stands for the user name and %c for
// the client id; a level holding %u or %c with anything else ("dev-%u") is
// an error, and any other '%' is literal. Unlike mosquitto, where they are
// for anonymous clients only, "topic" rules before the first "user" line
// apply to every client, like patterns. A substituted rule never matches an identity that is empty, starts with '$'
// or contains '+', '#', '/' or U+0000, so an identity cannot widen the rule
// it is substituted into. With an ACL configured everything not granted is
// denied; anonymous clients (user "") get the rules that apply to everyone.
//
// # Policy
//
// [Policy] puts the three together into the decisions the broker asks for
// (it is the engine's Authorizer): who a connecting client is — the
// identity of a verified client certificate, or a user name whose password
// the password file confirms, or anonymous — whether it may connect, and
// what it may publish, subscribe to and receive. Reload rereads both files.
//
// # Failed logins
//
// [FailedLoginLimiter] is a token bucket per source address (IPv6 grouped by
// /64) with a bounded number of entries, evicting the least recently used.
package auth
