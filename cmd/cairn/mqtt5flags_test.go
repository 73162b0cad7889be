package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServeMQTT5Flags(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, err := runServeConfig(t)
		if err != nil {
			t.Fatal(err)
		}
		f := cfg.Engine.Features
		if f.ReceiveMaximum != 64 || f.TopicAliasMaximum != 64 || f.NoTopicAliases || f.MaximumQoS != nil || f.NoRetain ||
			f.NoWildcardSubs || f.NoSubscriptionIDs || f.NoSharedSubs || f.OutboundTopicAliases || f.MaxKeepAlive != 0 || f.MaxSessionExpiry != 0 {
			t.Fatalf("default features %+v", f)
		}
	})
	t.Run("set", func(t *testing.T) {
		cfg, err := runServeConfig(t, "--receive-maximum", "10", "--topic-alias-maximum", "0", "--outbound-topic-aliases",
			"--max-keepalive", "2m", "--max-session-expiry", "24h", "--max-qos", "1", "--retain-available=false",
			"--wildcard-subscriptions=false", "--subscription-identifiers=false", "--shared-subscriptions=false",
			"--response-information", "r/")
		if err != nil {
			t.Fatal(err)
		}
		f := cfg.Engine.Features
		if f.ReceiveMaximum != 10 || !f.NoTopicAliases || !f.OutboundTopicAliases || f.MaxKeepAlive != 120 || f.MaxSessionExpiry != 86400 ||
			f.MaximumQoS == nil || *f.MaximumQoS != 1 || !f.NoRetain || !f.NoWildcardSubs || !f.NoSubscriptionIDs || !f.NoSharedSubs || f.ResponseInfo != "r/" {
			t.Fatalf("features %+v", f)
		}
	})
	t.Run("file and environment", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "cairn.yaml")
		if err := os.WriteFile(file, []byte("receive-maximum: 7\nmax-qos: 0\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("CAIRN_RECEIVE_MAXIMUM", "9")
		cfg, err := runServeConfig(t, "--config", file)
		if err != nil {
			t.Fatal(err)
		}
		if f := cfg.Engine.Features; f.ReceiveMaximum != 9 || f.MaximumQoS == nil || *f.MaximumQoS != 0 {
			t.Fatalf("features %+v (env over file)", f)
		}
	})
	for _, args := range [][]string{
		{"--receive-maximum", "0"}, {"--topic-alias-maximum", "70000"}, {"--max-qos", "3"},
		{"--max-keepalive", "100000s"}, {"--max-session-expiry", "-1s"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, err := runServeConfig(t, args...)
			if err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(args[0], "--")) {
				t.Fatalf("error %v, want one naming %s", err, args[0])
			}
		})
	}
}
