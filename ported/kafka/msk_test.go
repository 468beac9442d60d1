package kafka_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strangler-proxy/strangler/ported/delivery"
	"github.com/strangler-proxy/strangler/ported/kafka"
	"github.com/strangler-proxy/strangler/ported/kafka/kafkatest"
)

const (
	mskRegion = "eu-west-1"
	mskSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	mskToken  = "session-token-for-test"
)

// issuedCreds are what the injected provider handed out, by access key id,
// so the fake broker can check a token's signature and expiry.
type issuedCreds struct {
	mu    sync.Mutex
	byKey map[string]aws.Credentials
	calls atomic.Int32
}

func (c *issuedCreds) Retrieve(context.Context) (aws.Credentials, error) {
	n := c.calls.Add(1)
	cr := aws.Credentials{
		AccessKeyID:     fmt.Sprintf("AKIATEST%04d", n),
		SecretAccessKey: mskSecret,
		SessionToken:    mskToken,
		CanExpire:       true,
		Expires:         time.Now().Add(4 * time.Second), // a short STS session
	}
	c.mu.Lock()
	c.byKey[cr.AccessKeyID] = cr
	c.mu.Unlock()
	return cr, nil
}

func (c *issuedCreds) get(key string) (aws.Credentials, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cr, ok := c.byKey[key]
	return cr, ok
}

type authSeen struct {
	at      time.Time
	key     string
	expires time.Time
	err     error
}

// checkMSKToken verifies a token the way MSK does: a base64url presigned
// SigV4 URL for kafka-cluster:Connect, signed by known credentials.
func checkMSKToken(creds *issuedCreds, token string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return "", fmt.Errorf("token is not base64url: %w", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		return "", fmt.Errorf("token is not a URL: %w", err)
	}
	q := u.Query()
	if u.Scheme != "https" || u.Host != "kafka."+mskRegion+".amazonaws.com" {
		return "", fmt.Errorf("token URL %s://%s", u.Scheme, u.Host)
	}
	for k, want := range map[string]string{
		"Action": "kafka-cluster:Connect", "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
		"X-Amz-Expires": "900", "X-Amz-Security-Token": mskToken, "X-Amz-SignedHeaders": "host",
	} {
		if got := q.Get(k); got != want {
			return "", fmt.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(q.Get("User-Agent"), "aws-msk-iam-sasl-signer-go/") {
		return "", fmt.Errorf("User-Agent = %q", q.Get("User-Agent"))
	}
	cred := strings.Split(q.Get("X-Amz-Credential"), "/")
	if len(cred) != 5 || cred[2] != mskRegion || cred[3] != "kafka-cluster" || cred[4] != "aws4_request" {
		return "", fmt.Errorf("X-Amz-Credential = %q", q.Get("X-Amz-Credential"))
	}
	issued, ok := creds.get(cred[0])
	if !ok {
		return "", fmt.Errorf("token signed with unknown access key %q", cred[0])
	}
	signedAt, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return "", fmt.Errorf("X-Amz-Date: %w", err)
	}
	// Re-sign the same request with the issued secret; the signature must match.
	req, _ := http.NewRequest(http.MethodGet, "https://kafka."+mskRegion+".amazonaws.com/?"+
		url.Values{"Action": {"kafka-cluster:Connect"}, "X-Amz-Expires": {"900"}}.Encode(), nil)
	empty := sha256.Sum256(nil)
	want, _, err := v4.NewSigner().PresignHTTP(context.Background(), issued, req, hex.EncodeToString(empty[:]),
		"kafka-cluster", mskRegion, signedAt)
	if err != nil {
		return "", err
	}
	wu, _ := url.Parse(want)
	if sig := q.Get("X-Amz-Signature"); sig == "" || sig != wu.Query().Get("X-Amz-Signature") {
		return "", fmt.Errorf("X-Amz-Signature %q does not match the injected credentials", sig)
	}
	if time.Now().After(issued.Expires) {
		return "", fmt.Errorf("token signed by credentials that expired at %s", issued.Expires)
	}
	return cred[0], nil
}

func TestMSKIAMOAuthBearer(t *testing.T) {
	c := kafkatest.Start(t, kafkatest.Options{Topic: topic, TLS: true})
	creds := &issuedCreds{byKey: map[string]aws.Credentials{}}
	var (
		mu    sync.Mutex
		auths []authSeen
	)
	c.ControlKey(int16(kmsg.SASLHandshake), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.SASLHandshakeRequest)
		resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
		resp.SupportedMechanisms = []string{"OAUTHBEARER"}
		if req.Mechanism != "OAUTHBEARER" {
			resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		}
		return resp, nil, true
	})
	c.ControlKey(int16(kmsg.SASLAuthenticate), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.SASLAuthenticateRequest)
		resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
		seen := authSeen{at: time.Now()}
		// RFC 7628 initial client response: gs2 header, then kvpairs split by 0x01.
		tok, ok := bytes.CutPrefix(req.SASLAuthBytes, []byte("n,,\x01auth=Bearer "))
		if ok {
			tok, _, ok = bytes.Cut(tok, []byte("\x01\x01"))
		}
		if !ok {
			seen.err = fmt.Errorf("not an OAUTHBEARER initial response: %q", req.SASLAuthBytes)
		} else {
			seen.key, seen.err = checkMSKToken(creds, string(tok))
		}
		if seen.err != nil {
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			msg := seen.err.Error()
			resp.ErrorMessage = &msg
		} else {
			// Like MSK: the session lasts as long as the credentials behind it.
			cr, _ := creds.get(seen.key)
			seen.expires = cr.Expires
			resp.SessionLifetimeMillis = time.Until(cr.Expires).Milliseconds()
		}
		mu.Lock()
		auths = append(auths, seen)
		mu.Unlock()
		return resp, nil, true
	})

	cfg := kafka.Config{
		Brokers: []string{c.Addr}, Topic: topic,
		TLS:  kafka.TLSConfig{Enabled: true, CAFile: c.CAFile},
		SASL: kafka.SASLConfig{Mechanism: "AWS_MSK_IAM", Region: mskRegion},
	}
	p := newProducer(t, cfg, nil, kafka.WithCredentialsProvider(creds))

	// Produce for longer than one 4s session so the brokers' sessions must be
	// re-authenticated with a re-signed token.
	start := time.Now()
	for i := 0; time.Since(start) < 6*time.Second; i++ {
		m := delivery.Message{Key: []byte("user_1"), Value: fmt.Appendf(nil, `{"n":%d}`, i), EventID: fmt.Sprint(i)}
		if err := p.Publish(context.Background(), m); err != nil {
			t.Fatalf("Publish %d at %s: %v", i, time.Since(start), err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(auths) < 2 {
		t.Fatalf("saw %d SASL authentications, want at least 2", len(auths))
	}
	for i, a := range auths {
		t.Logf("auth %d at +%s with %s (credentials expire at +%s)", i, a.at.Sub(start).Round(time.Millisecond), a.key, a.expires.Sub(start).Round(time.Millisecond))
		if a.err != nil {
			t.Fatalf("authentication %d: %v", i, a.err)
		}
	}
	// Several connections opened at start shared the first token.
	if auths[0].key != auths[1].key {
		t.Errorf("the first two connections used different tokens (%s, %s): signing per connection", auths[0].key, auths[1].key)
	}
	// A new token was signed and used before the first one expired.
	var renewed bool
	for _, a := range auths {
		if a.key != auths[0].key && a.at.Before(auths[0].expires) {
			renewed = true
		}
	}
	if !renewed {
		t.Errorf("no re-signed token was used before the first expired at %s: %+v", auths[0].expires, auths)
	}
	// Refreshing at 80% of a 4s lifetime over ~6s is a handful of signings,
	// far fewer than the authentications.
	if calls := creds.calls.Load(); calls < 2 || int(calls) > len(auths) || calls > 5 {
		t.Errorf("credential retrievals = %d for %d authentications", calls, len(auths))
	}
}
