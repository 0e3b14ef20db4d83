package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// versitygwPath finds the S3-compatible server the tests publish to: LATCHKEY_VERSITYGW,
// then where `make tools` installs it, then PATH. Without it the test skips (fails in CI).
func versitygwPath(t *testing.T) string {
	if p := os.Getenv("LATCHKEY_VERSITYGW"); p != "" {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "latchkey", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("versitygw not found (LATCHKEY_VERSITYGW, ~/.cache/latchkey/bin, PATH): run make tools")
	}
	t.Skip("versitygw (make tools) not found: skipping the S3 test")
	return ""
}

const s3Access, s3Secret = "latchkeytest", "latchkey-test-secret-key"

// startS3 runs versitygw on a loopback port over a temporary directory, with one bucket,
// until the test ends, and returns its endpoint.
func startS3(t *testing.T, bucket string) string {
	t.Helper()
	bin := versitygwPath(t)
	for attempt := 0; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		cmd := exec.Command(bin, "--port", addr, "--access", s3Access, "--secret", s3Secret, "--quiet", "posix", t.TempDir())
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Kill()
			<-exited
		}
		if err := waitHTTP(addr, exited); err != nil {
			stop()
			if attempt < 3 {
				continue // the port was most likely taken in between
			}
			t.Fatalf("versitygw did not start: %v\n%s", err, out.String())
		}
		t.Cleanup(stop)
		endpoint := "http://" + addr
		client := s3.New(s3.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
			Credentials: credentials.NewStaticCredentialsProvider(s3Access, s3Secret, ""),
		})
		if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatalf("create bucket: %v", err)
		}
		return endpoint
	}
}

func waitHTTP(addr string, exited <-chan error) error {
	const waitFor = 30 * time.Second
	deadline := time.Now().Add(waitFor)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		if resp, err := client.Get("http://" + addr + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("no answer within " + waitFor.String())
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
