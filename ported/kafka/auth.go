package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/aws/aws-msk-iam-sasl-signer-go/signer"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/xdg-go/scram"
	"go.uber.org/zap"
)

// tlsConfig builds the client TLS settings; it reads the CA file.
func tlsConfig(c TLSConfig) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // opt-in, documented as local-only
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka.tls.ca_file %s: no PEM certificates", c.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// scramClient adapts xdg-go/scram to sarama.SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, pass, authzID string) error {
	cl, err := c.hash.NewClient(user, pass, authzID)
	if err != nil {
		return fmt.Errorf("scram client: %w", err)
	}
	c.conv = cl.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }

func (c *scramClient) Done() bool { return c.conv.Done() }

// tokenFunc signs an MSK IAM token: a base64url presigned
// kafka-cluster:Connect URL and its expiry in Unix milliseconds.
type tokenFunc func(ctx context.Context, region string, p aws.CredentialsProvider) (string, int64, error)

// credentialsExpiryWindow makes the AWS credentials cache renew credentials
// this long before they expire, so a token is never signed with credentials
// about to lapse (which would make the token lapse with them).
const credentialsExpiryWindow = 5 * time.Minute

// defaultCredentials is the aws-sdk-go-v2 default chain (env, shared files,
// web identity, ECS/EC2 roles), optionally assuming roleARN on top.
func defaultCredentials(ctx context.Context, s SASLConfig) (aws.CredentialsProvider, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx,
		awsconfig.WithRegion(s.Region),
		awsconfig.WithCredentialsCacheOptions(func(o *aws.CredentialsCacheOptions) {
			o.ExpiryWindow = credentialsExpiryWindow
		}))
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if s.RoleARN == "" {
		return cfg.Credentials, nil
	}
	return aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), s.RoleARN),
		func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = credentialsExpiryWindow }), nil
}

// mskTokenProvider is sarama's AccessTokenProvider for MSK IAM. sarama asks
// for a token on every connection and re-authentication; the token is cached
// and re-signed once 80% of its lifetime has passed, so brokers never see an
// expired token and a reconnect storm never becomes a signing storm.
type mskTokenProvider struct {
	region  string
	creds   aws.CredentialsProvider
	sign    tokenFunc
	now     func() time.Time
	timeout time.Duration
	log     *zap.Logger
	onSign  func() // counts signings (metrics)

	// mu makes refresh single-flight: one caller signs, the others wait for
	// it and take the fresh token.
	mu        sync.Mutex
	token     string
	expires   time.Time
	refreshAt time.Time
}

// refreshFraction of a token's lifetime passes before it is re-signed.
const refreshFraction = 0.8

func (p *mskTokenProvider) Token() (*sarama.AccessToken, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.token != "" && now.Before(p.refreshAt) {
		return &sarama.AccessToken{Token: p.token}, nil
	}
	// sarama's Token has no context; bound the credential fetch (STS, IMDS)
	// ourselves so a connection attempt cannot hang on it.
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	token, expires, err := p.signToken(ctx)
	if err != nil {
		if p.token != "" && now.Before(p.expires) {
			p.log.Warn("msk iam token refresh failed; using the current token until it expires",
				zap.Time("expires", p.expires), zap.Error(err))
			return &sarama.AccessToken{Token: p.token}, nil
		}
		return nil, err
	}
	p.token, p.expires = token, expires
	p.refreshAt = now.Add(time.Duration(float64(expires.Sub(now)) * refreshFraction))
	if p.onSign != nil {
		p.onSign()
	}
	return &sarama.AccessToken{Token: token}, nil
}

func (p *mskTokenProvider) signToken(ctx context.Context) (string, time.Time, error) {
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("msk iam credentials: %w", err)
	}
	// Sign with exactly the credentials just retrieved so their expiry is
	// known: a presigned URL dies with the credentials that signed it.
	token, expMs, err := p.sign(ctx, p.region, credentials.StaticCredentialsProvider{Value: creds})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("msk iam token: %w", err)
	}
	if token == "" {
		return "", time.Time{}, errors.New("msk iam token: signer returned an empty token")
	}
	expires := time.UnixMilli(expMs)
	if creds.CanExpire && creds.Expires.Before(expires) {
		expires = creds.Expires
	}
	return token, expires, nil
}

// signMSKToken is the production tokenFunc.
func signMSKToken(ctx context.Context, region string, p aws.CredentialsProvider) (string, int64, error) {
	return signer.GenerateAuthTokenFromCredentialsProvider(ctx, region, p)
}
