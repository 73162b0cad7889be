// Package bench is Cairn's load generator: an MQTT client built for load
// (pipelined publishes, batched writes and acknowledgements, no allocation per
// message), the scenarios that drive a broker with it, and the results they
// produce — messages per second, end-to-end and PUBACK latency from HDR-style
// histograms, losses counted message by message, and the broker's and the
// generator's own CPU and memory read from /proc.
//
// It talks to any MQTT broker over TCP and imports nothing of Cairn but the
// wire codec, so the same run can be pointed at Cairn and at another broker
// (Compare alternates two of them and reports the ratios).
//
// Scenarios (see Scenarios):
//   - fanin: P publishers, one wildcard subscriber;
//   - fanout: one publisher, S subscribers;
//   - pairs: N publisher/subscriber pairs;
//   - offline: a persistent QoS 1 subscriber is away while K messages are
//     queued for it, then drains them;
//   - connect: a connect storm, and the broker's memory per idle connection;
//   - restart: the time a (re)started broker takes to accept connections
//     and to deliver the first queued message;
//   - crash: a kill -9 checker — SIGKILL and restart the broker N times
//     under persistent QoS 1/2 and retained load, then check that nothing
//     acknowledged was lost and no QoS 2 message was delivered twice.
//
// Files, one mechanism each: hist.go (latency histogram), frame.go (packet
// framing and the hot-path codec), client.go (the connection), stamp.go
// (payload stamps and the received-set), publisher.go and subscriber.go (the
// two roles), flow.go (fanin, fanout, pairs), offline.go, connect.go,
// restart.go, crash.go and crashclients.go (the kill -9 checker and its
// clients, whose MQTT state outlives their connections), launcher.go (starting and stopping brokers), proc.go (/proc
// sampling), result.go (results, table, JSON), compare.go, report.go (HTML),
// run.go (configuration and dispatch).
//
// Every load loop is bounded both by a count and by time, and every address
// is the caller's (loopback in practice).
package bench
