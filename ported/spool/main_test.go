package spool

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir) // runs until TestKill9 kills it
		os.Exit(3)
	}
	goleak.VerifyTestMain(m, kafkatest.LeakOptions()...)
}
