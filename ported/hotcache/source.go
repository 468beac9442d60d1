package hotcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Source fetches the campaigns document unless it still has the given ETag.
// It is shaped like S3 GetObject with If-None-Match so that the file system
// and S3 look the same to the cache.
type Source interface {
	Fetch(ctx context.Context, etag string) (Object, error)
}

// Object is what a Source returns.
type Object struct {
	// Body is the document; nil when NotModified. The caller closes it.
	Body io.ReadCloser
	// ETag identifies this version; the next Fetch passes it back.
	ETag string
	// Size is the announced body length (Content-Length), -1 if unknown.
	// The cache refuses a body of another length.
	Size int64
	// NotModified says the object still has the ETag passed to Fetch.
	NotModified bool
}

// Interface guards.
var (
	_ Source = (*FileSource)(nil)
	_ Source = (*S3Source)(nil)
)

// NewSource builds the Source named by cfg.Source.
func NewSource(ctx context.Context, cfg Config) (Source, error) {
	cfg = cfg.WithDefaults()
	loc, err := parseSource(cfg.Source)
	if err != nil {
		return nil, err
	}
	if loc.path != "" {
		return NewFileSource(loc.path, cfg.MaxBytes), nil
	}
	client, err := NewS3Client(ctx, cfg.S3)
	if err != nil {
		return nil, err
	}
	return NewS3Source(client, loc.bucket, loc.key), nil
}

// FileSource reads the document from a local file.
//
// Its ETag is "size-mtime-sha256". A file whose size and mtime are unchanged
// is not read at all; one that was only touched (same content) answers
// NotModified with a refreshed ETag, so the cache does not parse it again.
type FileSource struct {
	path     string
	maxBytes int64
}

// NewFileSource reads path (relative to the working directory or absolute),
// refusing files larger than maxBytes (<= 0: no limit).
func NewFileSource(path string, maxBytes int64) *FileSource {
	return &FileSource{path: path, maxBytes: maxBytes}
}

// Fetch implements Source.
func (s *FileSource) Fetch(ctx context.Context, etag string) (Object, error) {
	if err := ctx.Err(); err != nil {
		return Object{}, err
	}
	f, err := os.Open(s.path)
	if err != nil {
		return Object{}, err // *PathError names the file
	}
	defer f.Close()
	// Stat the open file, not the path, so size and content belong together
	// even when the file is replaced by a rename meanwhile.
	fi, err := f.Stat()
	if err != nil {
		return Object{}, err
	}
	if !fi.Mode().IsRegular() {
		return Object{}, fmt.Errorf("read %s: not a regular file", s.path)
	}
	stamp := strconv.FormatInt(fi.Size(), 10) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 10)
	oldStamp, oldSum, _ := strings.Cut(etag, "/")
	if etag != "" && stamp == oldStamp {
		return Object{ETag: etag, Size: -1, NotModified: true}, nil
	}
	if s.maxBytes > 0 && fi.Size() > s.maxBytes {
		return Object{}, fmt.Errorf("read %s: %d bytes: %w", s.path, fi.Size(), ErrTooLarge)
	}
	var buf bytes.Buffer
	buf.Grow(int(fi.Size()) + bytes.MinRead)
	limit := s.maxBytes
	if limit <= 0 {
		limit = fi.Size() + 1
	}
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return Object{}, err
	}
	sum := sha256.Sum256(buf.Bytes())
	hexSum := hex.EncodeToString(sum[:])
	newTag := stamp + "/" + hexSum
	if etag != "" && hexSum == oldSum {
		return Object{ETag: newTag, Size: -1, NotModified: true}, nil
	}
	// Size is what the file claimed when opened: a writer truncating or
	// appending in place while we read shows up as a length mismatch.
	return Object{Body: io.NopCloser(&buf), ETag: newTag, Size: fi.Size()}, nil
}

// GetObjectAPI is the part of *s3.Client the S3 source uses.
type GetObjectAPI interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// S3Source reads the document from an S3 object with a conditional GET.
type S3Source struct {
	api         GetObjectAPI
	bucket, key string
}

// NewS3Source reads s3://bucket/key through api.
func NewS3Source(api GetObjectAPI, bucket, key string) *S3Source {
	return &S3Source{api: api, bucket: bucket, key: key}
}

// Fetch implements Source.
func (s *S3Source) Fetch(ctx context.Context, etag string) (Object, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key)}
	if etag != "" {
		in.IfNoneMatch = aws.String(etag)
	}
	out, err := s.api.GetObject(ctx, in)
	if err != nil {
		// The SDK reports 304 Not Modified as an error; only the HTTP
		// status of the smithy response error tells it apart.
		var re interface{ HTTPStatusCode() int }
		if etag != "" && errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotModified {
			return Object{ETag: etag, Size: -1, NotModified: true}, nil
		}
		return Object{}, fmt.Errorf("get s3://%s/%s: %w", s.bucket, s.key, err)
	}
	size := int64(-1)
	if out.ContentLength != nil {
		size = *out.ContentLength
	}
	return Object{Body: out.Body, ETag: aws.ToString(out.ETag), Size: size}, nil
}

// NewS3Client builds an S3 client from c. With static credentials it needs
// no I/O; without, it loads the AWS default chain.
func NewS3Client(ctx context.Context, c S3Config) (*s3.Client, error) {
	apply := func(o *s3.Options) {
		if c.Region != "" {
			o.Region = c.Region
		}
		if o.Region == "" {
			o.Region = DefaultRegion
		}
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		// Checksums only where S3 demands them: S3-compatible stores do not
		// all send the CRC headers newer SDKs otherwise validate.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
	if c.AccessKeyID != "" {
		o := s3.Options{
			Credentials: credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, c.SessionToken),
		}
		apply(&o)
		return s3.New(o), nil
	}
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	return s3.NewFromConfig(awsCfg, apply), nil
}
