package hotcache

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/strangler-proxy/strangler/ported/campaign/campaigngen"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const bucket = "campaigns"

// doc encodes a generated document of n campaigns.
func doc(t testing.TB, n int, seed uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := campaigngen.Encode(&buf, campaigngen.Generate(n, seed, 1)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Fault modes of the handler in front of gofakes3.
const (
	faultNone               = iota
	faultTruncateKeepLength // announce the full Content-Length, send half
	faultTruncateChunked    // no Content-Length, send half, end cleanly
)

// faultHandler sits in front of gofakes3 and damages GET object responses
// on demand, the way a broken network or middlebox would.
type faultHandler struct {
	next  http.Handler
	mode  atomic.Int32
	gets  atomic.Int32
	codes chan int
}

func (f *faultHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		f.next.ServeHTTP(w, r)
		return
	}
	f.gets.Add(1)
	rec := httptest.NewRecorder()
	f.next.ServeHTTP(rec, r)
	if f.codes != nil {
		select {
		case f.codes <- rec.Code:
		default:
		}
	}
	mode := f.mode.Load()
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	if rec.Code != http.StatusOK || mode == faultNone {
		w.WriteHeader(rec.Code)
		w.Write(body)
		return
	}
	half := body[:len(body)/2]
	switch mode {
	case faultTruncateKeepLength:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	case faultTruncateChunked:
		w.Header().Del("Content-Length")
	}
	w.WriteHeader(http.StatusOK)
	w.Write(half)
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
}

// s3Env is gofakes3 (in-memory backend) over real HTTP on 127.0.0.1.
type s3Env struct {
	srv    *httptest.Server
	faults *faultHandler
	client *s3.Client
}

func newS3Env(t testing.TB) *s3Env {
	t.Helper()
	faults := &faultHandler{next: gofakes3.New(s3mem.New()).Server(), codes: make(chan int, 64)}
	srv := httptest.NewServer(faults)
	tr := &http.Transport{}
	t.Cleanup(func() {
		srv.Close()
		tr.CloseIdleConnections()
	})
	client := s3.New(s3.Options{
		Region:                     "us-east-1",
		BaseEndpoint:               aws.String(srv.URL),
		UsePathStyle:               true,
		Credentials:                credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:                 &http.Client{Transport: tr, Timeout: 10 * time.Second},
		Retryer:                    aws.NopRetryer{},
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return &s3Env{srv: srv, faults: faults, client: client}
}

func (e *s3Env) put(t testing.TB, key string, body []byte) {
	t.Helper()
	_, err := e.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body),
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

func (e *s3Env) del(t testing.TB, key string) {
	t.Helper()
	if _, err := e.client.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}); err != nil {
		t.Fatalf("delete %s: %v", key, err)
	}
}

// lastCode is the HTTP status of the most recent GET gofakes3 answered.
func (e *s3Env) lastCode() int {
	code := 0
	for {
		select {
		case code = <-e.faults.codes:
		default:
			return code
		}
	}
}

func newCache(t testing.TB, src Source, cfg Config) (*Cache, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.Source == "" {
		cfg.Source = "file://unused"
	}
	log := zap.NewNop()
	if _, bench := t.(*testing.B); !bench {
		log = zaptest.NewLogger(t)
	}
	c, err := New(context.Background(), Options{Config: cfg, Source: src, Registerer: reg, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

// metric reads one sample from reg; label is the "result" value or "".
func metric(t testing.TB, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result != "" && label(m, "result") != result {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("metric %s{result=%q} not found", name, result)
	return 0
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
