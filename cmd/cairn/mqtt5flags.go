package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/urfave/cli/v2/altsrc"

	"github.com/cairn-mqtt/cairn/engine"
)

// The `serve` flags of the MQTT 5.0 capabilities and limits the broker
// announces in CONNACK (engine.Features).

func mqtt5Flags() []cli.Flag {
	return []cli.Flag{
		altsrc.NewIntFlag(&cli.IntFlag{Name: "receive-maximum", Value: 64, Usage: "QoS 1/2 PUBLISHes a 5.0 client may have unacknowledged toward the broker", EnvVars: []string{"CAIRN_RECEIVE_MAXIMUM"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "topic-alias-maximum", Value: 64, Usage: "highest topic alias a 5.0 client may use (0: none)", EnvVars: []string{"CAIRN_TOPIC_ALIAS_MAXIMUM"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "outbound-topic-aliases", Usage: "use topic aliases toward 5.0 clients that accept them", EnvVars: []string{"CAIRN_OUTBOUND_TOPIC_ALIASES"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "max-keepalive", Usage: "cap on the keep alive of 5.0 clients (0: none)", EnvVars: []string{"CAIRN_MAX_KEEPALIVE"}}),
		altsrc.NewDurationFlag(&cli.DurationFlag{Name: "max-session-expiry", Usage: "cap on the session expiry interval of 5.0 clients (0: none)", EnvVars: []string{"CAIRN_MAX_SESSION_EXPIRY"}}),
		altsrc.NewIntFlag(&cli.IntFlag{Name: "max-qos", Value: 2, Usage: "highest QoS accepted and granted", EnvVars: []string{"CAIRN_MAX_QOS"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "retain-available", Value: true, Usage: "accept retained messages", EnvVars: []string{"CAIRN_RETAIN_AVAILABLE"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "wildcard-subscriptions", Value: true, Usage: "accept wildcard subscriptions", EnvVars: []string{"CAIRN_WILDCARD_SUBSCRIPTIONS"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "subscription-identifiers", Value: true, Usage: "accept subscription identifiers", EnvVars: []string{"CAIRN_SUBSCRIPTION_IDENTIFIERS"}}),
		altsrc.NewBoolFlag(&cli.BoolFlag{Name: "shared-subscriptions", Value: true, Usage: "accept shared subscriptions ($share/group/filter)", EnvVars: []string{"CAIRN_SHARED_SUBSCRIPTIONS"}}),
		altsrc.NewStringFlag(&cli.StringFlag{Name: "response-information", Usage: "Response Information prefix sent to 5.0 clients that request it (the client id is appended)", EnvVars: []string{"CAIRN_RESPONSE_INFORMATION"}}),
	}
}

// loadFeatures reads and checks the flags of mqtt5Flags.
func loadFeatures(c *cli.Context) (engine.Features, error) {
	var f engine.Features
	switch rm, ta, q := c.Int("receive-maximum"), c.Int("topic-alias-maximum"), c.Int("max-qos"); {
	case rm < 1 || rm > 65535:
		return f, fmt.Errorf("receive-maximum: %d is not in 1..65535", rm)
	case ta < 0 || ta > 65535:
		return f, fmt.Errorf("topic-alias-maximum: %d is not in 0..65535", ta)
	case q < 0 || q > 2:
		return f, fmt.Errorf("max-qos: %d is not 0, 1 or 2", q)
	default:
		f.ReceiveMaximum, f.TopicAliasMaximum, f.NoTopicAliases = uint16(rm), uint16(ta), ta == 0
		if q < 2 {
			qos := byte(q)
			f.MaximumQoS = &qos
		}
	}
	ka, exp := c.Duration("max-keepalive"), c.Duration("max-session-expiry")
	switch {
	case ka < 0 || ka > 65535*time.Second:
		return f, fmt.Errorf("max-keepalive: %v is not in 0..65535s", ka)
	case exp < 0 || exp >= 0xFFFFFFFF*time.Second:
		return f, fmt.Errorf("max-session-expiry: %v is not in 0..4294967294s", exp)
	}
	f.MaxKeepAlive = uint16(ka / time.Second)
	f.MaxSessionExpiry = uint32(exp / time.Second)
	f.OutboundTopicAliases = c.Bool("outbound-topic-aliases")
	f.NoRetain = !c.Bool("retain-available")
	f.NoWildcardSubs = !c.Bool("wildcard-subscriptions")
	f.NoSubscriptionIDs = !c.Bool("subscription-identifiers")
	f.NoSharedSubs = !c.Bool("shared-subscriptions")
	f.ResponseInfo = c.String("response-information")
	return f, nil
}
