package kafka

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	gometrics "github.com/rcrowley/go-metrics"
	"go.uber.org/zap"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestMSKTokenProviderRefresh(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	tests := []struct {
		name         string
		credsTTL     time.Duration // 0 ⇒ credentials do not expire
		advance      time.Duration // after the first Token
		wantSignings int32
	}{
		{name: "fresh token is reused", advance: 11 * time.Minute, wantSignings: 1},
		{name: "re-signed past 80% of the 15 min token", advance: 12*time.Minute + time.Second, wantSignings: 2},
		{name: "credentials expiring first shorten the token", credsTTL: 10 * time.Second, advance: 8 * time.Second, wantSignings: 2},
		{name: "short credentials, before 80%", credsTTL: 10 * time.Second, advance: 7 * time.Second, wantSignings: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var signings atomic.Int32
			p := &mskTokenProvider{
				region: "eu-west-1",
				creds: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
					c := aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}
					if tt.credsTTL > 0 {
						c.CanExpire, c.Expires = true, clock.now().Add(tt.credsTTL)
					}
					return c, nil
				}),
				sign: func(_ context.Context, _ string, cp aws.CredentialsProvider) (string, int64, error) {
					n := signings.Add(1)
					return "token-" + string(rune('0'+n)), clock.now().Add(15 * time.Minute).UnixMilli(), nil
				},
				now:     clock.now,
				timeout: time.Second,
				log:     zap.NewNop(),
			}
			first, err := p.Token()
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			// Many connections at once: one signing.
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					tok, err := p.Token()
					if err != nil || tok.Token != first.Token {
						t.Errorf("concurrent Token = %v, %v; want the cached %q", tok, err, first.Token)
					}
				})
			}
			wg.Wait()
			clock.add(tt.advance)
			if _, err := p.Token(); err != nil {
				t.Fatalf("Token after %s: %v", tt.advance, err)
			}
			if got := signings.Load(); got != tt.wantSignings {
				t.Errorf("signings = %d, want %d", got, tt.wantSignings)
			}
		})
	}
}

func TestMSKTokenProviderKeepsValidTokenOnFailure(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	var fail atomic.Bool
	p := &mskTokenProvider{
		creds: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			if fail.Load() {
				return aws.Credentials{}, errors.New("imds unreachable")
			}
			return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
		}),
		sign: func(context.Context, string, aws.CredentialsProvider) (string, int64, error) {
			return "tok", clock.now().Add(15 * time.Minute).UnixMilli(), nil
		},
		now: clock.now, timeout: time.Second, log: zap.NewNop(),
	}
	if _, err := p.Token(); err != nil {
		t.Fatalf("Token: %v", err)
	}
	fail.Store(true)
	clock.add(13 * time.Minute) // past refresh, before expiry
	if tok, err := p.Token(); err != nil || tok.Token != "tok" {
		t.Fatalf("Token during credential outage = %v, %v; want the still valid token", tok, err)
	}
	clock.add(3 * time.Minute) // expired
	if _, err := p.Token(); err == nil {
		t.Fatal("Token after expiry with failing credentials: want an error")
	}
}

func TestDiscardRegistryAnswersNilMetrics(t *testing.T) {
	r := discardRegistry{}
	tests := []struct {
		name string
		get  func() any
	}{
		{"meter", func() any { return gometrics.GetOrRegisterMeter("m", r) }},
		{"counter", func() any { return gometrics.GetOrRegisterCounter("c", r) }},
		{"histogram", func() any {
			return gometrics.GetOrRegisterHistogram("h", r, gometrics.NewUniformSample(10))
		}},
		{"gauge", func() any { return gometrics.GetOrRegisterGauge("g", r) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch got := tt.get().(type) {
			case gometrics.NilMeter, gometrics.NilCounter, gometrics.NilHistogram, gometrics.NilGauge:
			default:
				t.Fatalf("got %T, want a go-metrics Nil metric", got)
			}
		})
	}
}
