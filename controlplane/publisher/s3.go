package publisher

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Config names an S3 bucket (AWS or any S3-compatible server) to publish into.
type S3Config struct {
	Bucket string
	// Prefix is prepended to every name ("snapshots" puts realm r's manifest at
	// "snapshots/r/manifest"); a missing trailing '/' is added.
	Prefix string
	// Endpoint is the server's base URL for S3-compatible servers ("http://127.0.0.1:7070");
	// empty means AWS.
	Endpoint string
	// Region defaults to us-east-1.
	Region string
	// AccessKey and SecretKey are static credentials; empty means the AWS default chain
	// (environment, shared config files, instance or task role).
	AccessKey, SecretKey string
	// PathStyle addresses the bucket as a path ("host/bucket/key") instead of a host name
	// ("bucket.host/key"), as most S3-compatible servers need.
	PathStyle bool
}

// S3Target publishes into an S3 bucket with conditional writes (S3 supports If-None-Match
// and If-Match on PutObject since 2024): objects are written with If-None-Match: * so an
// existing object is never replaced, and the manifest with If-Match on the ETag last seen,
// or If-None-Match: * for a realm's first manifest. A server that ignores these headers
// would still store correct objects, but would let two replicas overwrite each other's
// manifest: use one that honours them (AWS S3, versitygw, recent MinIO).
//
// Objects are sent with Cache-Control "public, max-age=31536000, immutable" (their names are
// content-addressed) and the manifest with "no-cache", so a CDN in front of the bucket may
// cache objects forever and must revalidate the manifest, which edges poll by ETag.
type S3Target struct {
	client *s3.Client
	bucket string
	prefix string
}

var _ Target = (*S3Target)(nil)

const (
	objectCacheControl   = "public, max-age=31536000, immutable"
	manifestCacheControl = "no-cache"
	// s3ConflictRetries bounds retries of a 409 ConditionalRequestConflict on an object:
	// S3's answer when another conditional write of the same key is in flight.
	s3ConflictRetries = 3
)

// NewS3Target returns a target for cfg. It does not contact the server.
func NewS3Target(ctx context.Context, cfg S3Config) (*S3Target, error) {
	if cfg.Bucket == "" {
		return nil, &Error{Op: "open", Err: errors.New("S3 bucket name required")}
	}
	prefix := cfg.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	var (
		ac  aws.Config
		err error
	)
	if cfg.AccessKey != "" || cfg.SecretKey != "" {
		if cfg.AccessKey == "" || cfg.SecretKey == "" {
			return nil, &Error{Op: "open", Err: errors.New("S3 access key and secret key go together")}
		}
		ac = aws.Config{
			Region:      region,
			Credentials: credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		}
	} else if ac, err = config.LoadDefaultConfig(ctx, config.WithRegion(region)); err != nil {
		return nil, &Error{Op: "open", Err: err}
	}
	client := s3.NewFromConfig(ac, func(o *s3.Options) {
		o.UsePathStyle = cfg.PathStyle
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			// The SDK's default flexible checksums (sent since 2025) are refused by a number
			// of S3-compatible servers; the manifest's SHA-256 of every object already guards
			// their integrity end to end.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	return &S3Target{client: client, bucket: cfg.Bucket, prefix: prefix}, nil
}

// s3Status returns the HTTP status of a failed S3 call, or 0.
func s3Status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func s3Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func isPreconditionFailed(err error) bool {
	return s3Status(err) == http.StatusPreconditionFailed || s3Code(err) == "PreconditionFailed"
}

func isConflict(err error) bool {
	return s3Status(err) == http.StatusConflict || s3Code(err) == "ConditionalRequestConflict"
}

// PutObject writes an object unless one of that name exists (412 on If-None-Match: * is the
// object already being there, which for a content-addressed name is success).
func (t *S3Target) PutObject(ctx context.Context, name string, data []byte) error {
	if err := checkName("put", name); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		_, err := t.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(t.bucket),
			Key:           aws.String(t.prefix + name),
			Body:          bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))),
			ContentType:   aws.String("application/octet-stream"),
			CacheControl:  aws.String(objectCacheControl),
			IfNoneMatch:   aws.String("*"),
		})
		switch {
		case err == nil || isPreconditionFailed(err):
			return nil
		case isConflict(err) && attempt < s3ConflictRetries:
			if werr := sleepCtx(ctx, time.Duration(attempt+1)*50*time.Millisecond); werr != nil {
				return &Error{Op: "put", Name: name, Err: werr}
			}
		default:
			return &Error{Op: "put", Name: name, Err: err}
		}
	}
}

// PutManifest writes the manifest if its ETag is prevETag, or if there is none when prevETag
// is "". A 412, or a 409 (another conditional write of it in flight), is a lost race.
func (t *S3Target) PutManifest(ctx context.Context, name string, data []byte, prevETag string) (string, error) {
	if err := checkName("put manifest", name); err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(t.bucket),
		Key:           aws.String(t.prefix + name),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/octet-stream"),
		CacheControl:  aws.String(manifestCacheControl),
	}
	if prevETag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(prevETag)
	}
	out, err := t.client.PutObject(ctx, in)
	switch {
	case err == nil:
	case isPreconditionFailed(err) || isConflict(err) || prevETag != "" && s3Status(err) == http.StatusNotFound:
		// S3 answers If-Match on a missing key with 404: the manifest is not the one expected.
		return "", &Error{Op: "put manifest", Name: name, Err: ErrPrecondition}
	default:
		return "", &Error{Op: "put manifest", Name: name, Err: err}
	}
	if out.ETag == nil || *out.ETag == "" {
		return "", &Error{Op: "put manifest", Name: name, Err: errors.New("server returned no ETag")}
	}
	return *out.ETag, nil
}

// Get reads an object or manifest and its ETag.
func (t *S3Target) Get(ctx context.Context, name string) ([]byte, string, error) {
	if err := checkName("get", name); err != nil {
		return nil, "", err
	}
	out, err := t.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(t.bucket), Key: aws.String(t.prefix + name)})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) || s3Status(err) == http.StatusNotFound {
			return nil, "", &Error{Op: "get", Name: name, Err: ErrNotFound}
		}
		return nil, "", &Error{Op: "get", Name: name, Err: err}
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", &Error{Op: "get", Name: name, Err: err}
	}
	return data, aws.ToString(out.ETag), nil
}

// List returns the names under prefix, sorted (S3 lists keys in UTF-8 binary order), reading
// every page.
func (t *S3Target) List(ctx context.Context, prefix string) ([]string, error) {
	if err := checkPrefix("list", prefix); err != nil {
		return nil, err
	}
	var out []string
	pages := s3.NewListObjectsV2Paginator(t.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(t.bucket),
		Prefix: aws.String(t.prefix + prefix),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, &Error{Op: "list", Name: prefix, Err: err}
		}
		for _, o := range page.Contents {
			out = append(out, strings.TrimPrefix(aws.ToString(o.Key), t.prefix))
		}
	}
	return out, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}

// CreateBucket creates the target's bucket, for first-time setup and tests; a bucket that
// already exists and is ours is not an error.
func (t *S3Target) CreateBucket(ctx context.Context) error {
	_, err := t.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(t.bucket)})
	if err != nil && (s3Code(err) == "BucketAlreadyOwnedByYou" || s3Code(err) == "BucketAlreadyExists" && s3Status(err) == 409) {
		return nil
	}
	if err != nil {
		return &Error{Op: "create bucket", Name: t.bucket, Err: err}
	}
	return nil
}
