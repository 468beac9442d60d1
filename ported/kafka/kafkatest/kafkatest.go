// Package kafkatest runs an in-process Kafka-protocol broker (franz-go's
// kfake) on a loopback TCP port for tests, with optional TLS and SASL, and
// reads topics back with franz-go's kgo client.
package kafkatest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/goleak"
)

// Options describe a cluster.
type Options struct {
	Topic      string
	Partitions int32 // 0 ⇒ 3
	// Port to listen on; 0 picks a free one (kept across Restart).
	Port int
	// TLS serves a self-signed certificate for 127.0.0.1; CAFile trusts it.
	TLS bool
	// Mechanism is "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
	Mechanism  string
	User, Pass string
	// DataDir persists the cluster's log so a restarted cluster on the same
	// port still holds what was produced before.
	DataDir string
	Extra   []kfake.Opt
}

// Cluster is a running fake cluster.
type Cluster struct {
	*kfake.Cluster
	Addr   string
	Port   int
	CAFile string // PEM of the self-signed CA when TLS is on

	t       testing.TB
	o       Options
	srvTLS  *tls.Config
	cliTLS  *tls.Config
	stopped bool
	gate    *gate
}

// Start starts a cluster and stops it on t.Cleanup.
func Start(t testing.TB, o Options) *Cluster {
	t.Helper()
	if o.Partitions == 0 {
		o.Partitions = 3
	}
	if o.Port == 0 {
		o.Port = freePort(t)
	}
	c := &Cluster{t: t, o: o, Port: o.Port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(o.Port)), gate: newGate()}
	if o.TLS {
		c.srvTLS, c.cliTLS, c.CAFile = selfSigned(t)
	}
	c.start()
	t.Cleanup(c.Stop)
	return c
}

func (c *Cluster) start() {
	c.t.Helper()
	opts := []kfake.Opt{kfake.Ports(c.Port), kfake.SeedTopics(c.o.Partitions, c.o.Topic), kfake.ListenFn(c.gate.listen)}
	if c.srvTLS != nil {
		opts = append(opts, kfake.TLS(c.srvTLS))
	}
	if c.o.Mechanism != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(c.o.Mechanism, c.o.User, c.o.Pass))
	}
	if c.o.DataDir != "" {
		opts = append(opts, kfake.DataDir(c.o.DataDir))
	}
	opts = append(opts, c.o.Extra...)
	var err error
	// The port of a just-closed cluster can take a moment to be free again.
	for deadline := time.Now().Add(5 * time.Second); ; {
		c.Cluster, err = kfake.NewCluster(opts...)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("kfake cluster on port %d: %v", c.Port, err)
	}
	c.stopped = false
}

// Stop closes the cluster (idempotent): clients see the broker vanish.
func (c *Cluster) Stop() {
	if !c.stopped {
		c.gate.open() // a partition ends with the cluster
		c.Cluster.Close()
		c.stopped = true
	}
}

// Restart starts a fresh cluster on the same port, with the same TLS
// certificate, users and topic (and data, with DataDir).
func (c *Cluster) Restart() {
	c.t.Helper()
	c.Stop()
	c.start()
}

// ClientTLS trusts the cluster's certificate (nil without TLS).
func (c *Cluster) ClientTLS() *tls.Config { return c.cliTLS }

// Consume reads the topic from the start until want records have arrived,
// then keeps polling for settle to catch extras; it fails the test if want
// is not reached by timeout.
func (c *Cluster) Consume(want int, settle, timeout time.Duration) []*kgo.Record {
	c.t.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Addr),
		kgo.ConsumeTopics(c.o.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200 * time.Millisecond),
	}
	if c.cliTLS != nil {
		opts = append(opts, kgo.DialTLSConfig(c.cliTLS.Clone()))
	}
	if m := c.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.t.Fatalf("kgo client: %v", err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	deadline := time.Now().Add(timeout)
	var settleUntil time.Time
	for {
		now := time.Now()
		if len(recs) >= want && settleUntil.IsZero() {
			settleUntil = now.Add(settle)
		}
		if !settleUntil.IsZero() && now.After(settleUntil) {
			return recs
		}
		if now.After(deadline) {
			c.t.Fatalf("consumed %d records, want %d within %s", len(recs), want, timeout)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
}

func (c *Cluster) mechanism() sasl.Mechanism {
	switch c.o.Mechanism {
	case "PLAIN":
		return plain.Auth{User: c.o.User, Pass: c.o.Pass}.AsMechanism()
	case "SCRAM-SHA-256":
		return scram.Auth{User: c.o.User, Pass: c.o.Pass}.AsSha256Mechanism()
	case "SCRAM-SHA-512":
		return scram.Auth{User: c.o.User, Pass: c.o.Pass}.AsSha512Mechanism()
	}
	return nil
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// selfSigned makes a CA-less self-signed ECDSA certificate for 127.0.0.1 and
// writes it as the PEM a client trusts.
func selfSigned(t testing.TB) (srv, cli *tls.Config, caFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("tls key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("tls cert: %v", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("tls cert: %v", err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatalf("tls ca file: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	srv = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}},
	}
	cli = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: "127.0.0.1"}
	return srv, cli, caFile
}

// LeakOptions are the goleak exceptions for tests using sarama and kfake.
// Each is a goroutine that outlives Close by design, not a leak of ours.
func LeakOptions() []goleak.Option {
	return []goleak.Option{
		// sarama guards each topic and partition producer with an
		// eapache/go-resiliency circuit breaker (3 errors ⇒ open for 10s).
		// Opening it starts a goroutine that sleeps the 10s and then
		// half-opens the breaker; it cannot be stopped and ends by itself.
		goleak.IgnoreAnyFunction("github.com/eapache/go-resiliency/breaker.(*Breaker).timer"),
		// sarama's FetchRequest encoder records consumer-fetch-rate-for-topic
		// during its sizing pass, where the registry is nil, so go-metrics
		// falls back to its default registry whatever Config.MetricRegistry
		// says: the first fetch of a process starts go-metrics' one meter
		// ticker, which never stops (one meter per topic, process-wide).
		goleak.IgnoreAnyFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"),
	}
}
