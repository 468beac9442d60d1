package spool

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/strangler-proxy/strangler/ported/delivery"
)

// Readiness fails exactly when the intake starts refusing: Ping says no as
// soon as the next event (as large as the ones before) would not fit, not
// only once max_bytes is reached — which, for events of one size, it
// never is exactly.
func TestPingFailsWhenTheNextEventWouldNotFit(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxBytes = 64 << 10
	s := open(t, cfg)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = s.Close(ctx) // nothing drains these: the deadline is expected
	}()
	ctx := context.Background()
	accepted := 0
	for i := range 10000 {
		ready := s.Ping(ctx) == nil
		err := s.Publish(ctx, delivery.Message{ // all of one size, as a stream of like events
			Key: []byte("user_1"), Value: fmt.Appendf(nil, `{"seq":%06d,"pad":"%0100d"}`, i, 0), EventID: fmt.Sprintf("evt_%05d", i),
		})
		if ready != (err == nil) {
			st := s.Stats()
			t.Fatalf("event %d: Ping ready=%v but Publish = %v (%d events, %d of %d bytes)", i, ready, err, st.Entries, st.Bytes, cfg.MaxBytes)
		}
		if err != nil {
			break
		}
		accepted++
	}
	if st := s.Stats(); accepted == 0 || st.Bytes >= cfg.MaxBytes {
		t.Fatalf("%d accepted, %d bytes: want the spool refusing below max_bytes %d", accepted, st.Bytes, cfg.MaxBytes)
	}
}
