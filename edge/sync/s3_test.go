package sync

import (
	"context"
	"testing"

	"github.com/latchkeyhq/latchkey/controlplane/publisher"
	"github.com/latchkeyhq/latchkey/controlplane/publisher/s3test"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// TestS3Source follows a realm in a real S3-protocol server (versitygw), written by the control
// plane's own S3 target: first snapshot, an unchanged manifest (If-None-Match), then a newer one.
func TestS3Source(t *testing.T) {
	srv := s3test.Start(t)
	f := newFixture(t)
	ctx := context.Background()
	cfg := publisher.S3Config{Bucket: "edge-sync", Prefix: "snap/", Endpoint: srv.Endpoint, Region: "us-east-1",
		AccessKey: srv.Access, SecretKey: srv.Secret, PathStyle: true}
	tg, err := publisher.NewS3Target(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := tg.CreateBucket(ctx); err != nil {
		t.Fatal(err)
	}
	etag := ""
	upload := func() {
		m, err := snapshot.VerifyManifest(f.b.Manifest, []snapshot.TrustedKey{f.b.Trusted}, hostcrypto.Std)
		if err != nil {
			t.Fatal(err)
		}
		for i, ref := range m.Objects {
			if err := tg.PutObject(ctx, publisher.ObjectName(f.realm(), ref.Name), f.b.Objects[i]); err != nil {
				t.Fatal(err)
			}
		}
		if etag, err = tg.PutManifest(ctx, publisher.ManifestName(f.realm()), f.b.Manifest, etag); err != nil {
			t.Fatal(err)
		}
	}
	upload()
	src, err := NewS3Source(ctx, S3Config{Bucket: cfg.Bucket, Prefix: cfg.Prefix, Endpoint: cfg.Endpoint, PathStyle: true,
		AccessKey: srv.Access, SecretKey: srv.Secret})
	if err != nil {
		t.Fatal(err)
	}
	s := f.syncer(t, src, "")
	mustPoll(t, s)
	v1 := s.Current().M.Version
	if changed, err := s.Poll(ctx); err != nil || changed {
		t.Fatalf("unchanged manifest: changed=%v err=%v", changed, err)
	}
	if _, _, err := src.Get(ctx, ManifestName(f.realm()), s.etag); err != ErrNotModified {
		t.Fatalf("If-None-Match with the current ETag: %v, want ErrNotModified", err)
	}
	f.next(t, func(c *snapshot.Contents) {})
	upload()
	mustPoll(t, s)
	if s.Current().M.Version != v1+1 {
		t.Fatalf("after a new publication: version %d, want %d", s.Current().M.Version, v1+1)
	}
	if _, _, err := src.Get(ctx, ObjectName(f.realm(), "missing"), ""); err != ErrNotFound {
		t.Fatalf("missing object: %v, want ErrNotFound", err)
	}
}
