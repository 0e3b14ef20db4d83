package sync

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Config names a bucket (any S3-compatible store) holding the publisher's layout.
type S3Config struct {
	Bucket string
	// Prefix is prepended to every name ("snapshots/"); may be empty.
	Prefix string
	// Endpoint overrides the AWS endpoint (MinIO, versitygw, R2, …); PathStyle addresses the
	// bucket in the path, as most S3-compatible servers want.
	Endpoint  string
	PathStyle bool
	Region    string
	// AccessKey and SecretKey, when set, are used instead of the default AWS credential chain.
	AccessKey, SecretKey string
}

// S3Source reads the layout from a bucket with GetObject and If-None-Match.
type S3Source struct {
	client *s3.Client
	cfg    S3Config
}

// NewS3Source builds a client from cfg and the default AWS configuration chain.
func NewS3Source(ctx context.Context, cfg S3Config) (*S3Source, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("sync: s3: bucket is required")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	ac, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, errors.New("sync: s3: " + err.Error())
	}
	client := s3.NewFromConfig(ac, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
	})
	return &S3Source{client: client, cfg: cfg}, nil
}

// Get implements Source.
func (s *S3Source) Get(ctx context.Context, name, etag string) ([]byte, string, error) {
	if !validName(name) {
		return nil, "", errors.New("sync: invalid file name " + strconv.Quote(name))
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.cfg.Prefix + name)}
	if etag != "" {
		in.IfNoneMatch = aws.String(etag)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) {
			switch re.HTTPStatusCode() {
			case http.StatusNotModified:
				return nil, etag, ErrNotModified
			case http.StatusNotFound:
				return nil, "", ErrNotFound
			}
		}
		return nil, "", errors.New("sync: s3 get " + name + ": " + err.Error())
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxFetch+1))
	if err != nil {
		return nil, "", err
	}
	if len(data) > maxFetch {
		return nil, "", errors.New("sync: s3 get " + name + ": larger than " + strconv.Itoa(maxFetch) + " bytes")
	}
	return data, aws.ToString(out.ETag), nil
}
