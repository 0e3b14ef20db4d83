package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkeyhq/latchkey/controlplane/publisher"
	"github.com/latchkeyhq/latchkey/controlplane/publisher/s3test"
)

const s3Access, s3Secret = s3test.Access, s3test.Secret

// startS3 runs versitygw (see s3test) with one bucket until the test ends and returns its
// endpoint.
func startS3(t *testing.T, bucket string) string {
	t.Helper()
	srv := s3test.Start(t)
	tg, err := publisher.NewS3Target(context.Background(), publisher.S3Config{Bucket: bucket, Endpoint: srv.Endpoint,
		Region: "us-east-1", AccessKey: srv.Access, SecretKey: srv.Secret, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.CreateBucket(context.Background()); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return srv.Endpoint
}

// `latchkey serve` with a bucket publishes there (not to the directory), and
// `snapshot inspect` reads the bucket with the same settings.
func TestServePublishesToS3(t *testing.T) {
	const bucket = "latchkey-snapshots"
	endpoint := startS3(t, bucket)
	dir := t.TempDir()
	env := map[string]string{"LATCHKEY_S3_ACCESS_KEY": s3Access, "LATCHKEY_S3_SECRET_KEY": s3Secret}
	srv := startServe(t, env, "--addr", "127.0.0.1:0", "--data-dir", dir,
		"--s3-bucket", bucket, "--s3-endpoint", endpoint, "--s3-prefix", "edge/prod")
	if !strings.Contains(srv.stderr, "snapshots to s3://"+bucket+"/edge/prod") || strings.Contains(srv.stderr, s3Secret) {
		t.Fatalf("serve output:\n%s", srv.stderr)
	}
	key := secretRE.FindString(srv.stderr)
	out := ok(t, map[string]string{envURL: srv.url, envAdminKey: key}, "snapshot", "publish")
	if !strings.Contains(out, "version:") {
		t.Fatalf("snapshot publish:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "snapshots")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("snapshots went to the directory too: %v", err)
	}

	env["LATCHKEY_S3_BUCKET"] = bucket
	env["LATCHKEY_S3_ENDPOINT"] = endpoint
	out = ok(t, env, "snapshot", "inspect", "--s3-prefix", "edge/prod", "--data-dir", dir)
	if !strings.Contains(out, "s3://"+bucket+"/edge/prod") || !strings.Contains(out, "signing keys:") {
		t.Fatalf("inspect from S3:\n%s", out)
	}
	if err := srv.stop(); err != nil {
		t.Fatal(err)
	}
}
