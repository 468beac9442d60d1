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
	if dir := os.Getenv(resumeChildEnv); dir != "" {
		resumeChild(dir) // runs until TestResumeSkipsWhatKafkaHolds kills it
	}
	if dir := os.Getenv(lockChildEnv); dir != "" {
		lockChild(dir) // holds the spool until its stdin closes
	}
	goleak.VerifyTestMain(m, kafkatest.LeakOptions()...)
}
