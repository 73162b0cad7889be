package store

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

// longTests enables the long power-cut runs: go test ./store -store.long
var longTests = flag.Bool("store.long", false, "run many more crash cut points")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
