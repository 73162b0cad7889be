// Package admin is the broker's admin HTTP endpoint (`cairn serve --admin
// ADDR`, loopback by default): health and readiness probes, the inspect
// queries as JSON lines, and online backups as a tar stream of a fresh
// Pebble checkpoint. Other parts of Cairn add their own endpoints with
// Server.Handle (for example Prometheus metrics).
//
// The inspect answers come from Query, the same code `cairn inspect --data`
// runs on a stopped store, so that a running and a stopped broker show the
// same rows the same way.
package admin
