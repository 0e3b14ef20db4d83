package publisher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/latchkeyhq/latchkey/controlplane/publisher/s3test"
)

// testTarget runs the Target conformance suite: what the publisher relies on from every kind
// of object storage.
func testTarget(t *testing.T, newTarget func(t *testing.T) Target) {
	ctx := context.Background()

	t.Run("objects", func(t *testing.T) {
		tg := newTarget(t)
		if err := tg.PutObject(ctx, "r/objects/a", []byte("first")); err != nil {
			t.Fatal(err)
		}
		data, etag, err := tg.Get(ctx, "r/objects/a")
		if err != nil || string(data) != "first" || etag == "" {
			t.Fatalf("Get = %q, %q, %v", data, etag, err)
		}
		// Names are content-addressed: a second write of a name is a no-op, and never
		// replaces bytes a reader may be fetching.
		if err := tg.PutObject(ctx, "r/objects/a", []byte("second")); err != nil {
			t.Fatalf("rewriting an object: %v", err)
		}
		if data, _, _ := tg.Get(ctx, "r/objects/a"); string(data) != "first" {
			t.Fatalf("object replaced: %q", data)
		}
		if err := tg.PutObject(ctx, "r/objects/empty", nil); err != nil {
			t.Fatal(err)
		}
		if data, _, err := tg.Get(ctx, "r/objects/empty"); err != nil || len(data) != 0 {
			t.Fatalf("empty object: %q, %v", data, err)
		}
	})

	t.Run("not found", func(t *testing.T) {
		tg := newTarget(t)
		for _, name := range []string{"r/objects/missing", "r/manifest", "nothing"} {
			if _, _, err := tg.Get(ctx, name); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(%s) = %v, want ErrNotFound", name, err)
			}
		}
	})

	t.Run("conditional manifest", func(t *testing.T) {
		tg := newTarget(t)
		const name = "r/manifest"
		if _, err := tg.PutManifest(ctx, name, []byte("m1"), "some-etag"); !errors.Is(err, ErrPrecondition) {
			t.Fatalf("If-Match on a missing manifest: %v, want ErrPrecondition", err)
		}
		e1, err := tg.PutManifest(ctx, name, []byte("m1"), "")
		if err != nil || e1 == "" {
			t.Fatalf("first manifest: %q, %v", e1, err)
		}
		if _, err := tg.PutManifest(ctx, name, []byte("m1b"), ""); !errors.Is(err, ErrPrecondition) {
			t.Fatalf("If-None-Match on an existing manifest: %v, want ErrPrecondition", err)
		}
		if data, etag, err := tg.Get(ctx, name); err != nil || string(data) != "m1" || etag != e1 {
			t.Fatalf("Get = %q, %q, %v; want m1, %q", data, etag, err, e1)
		}
		e2, err := tg.PutManifest(ctx, name, []byte("m2"), e1)
		if err != nil || e2 == "" || e2 == e1 {
			t.Fatalf("second manifest: %q, %v (first etag %q)", e2, err, e1)
		}
		// A writer that still holds the first ETag lost the race: refused, nothing lost.
		if _, err := tg.PutManifest(ctx, name, []byte("stale"), e1); !errors.Is(err, ErrPrecondition) {
			t.Fatalf("stale ETag: %v, want ErrPrecondition", err)
		}
		if data, etag, err := tg.Get(ctx, name); err != nil || string(data) != "m2" || etag != e2 {
			t.Fatalf("after the stale write: %q, %q, %v; want m2, %q", data, etag, err, e2)
		}
	})

	t.Run("racing writers", func(t *testing.T) {
		tg := newTarget(t)
		const name = "r/manifest"
		e0, err := tg.PutManifest(ctx, name, []byte("m0"), "")
		if err != nil {
			t.Fatal(err)
		}
		const writers = 8
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			wins []int
		)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := tg.PutManifest(ctx, name, []byte("writer "+strconv.Itoa(i)), e0)
				switch {
				case err == nil:
					mu.Lock()
					wins = append(wins, i)
					mu.Unlock()
				case !errors.Is(err, ErrPrecondition):
					t.Errorf("writer %d: %v", i, err)
				}
			}()
		}
		wg.Wait()
		if len(wins) != 1 {
			t.Fatalf("%d writers won the same conditional write (%v), want exactly 1", len(wins), wins)
		}
		if data, _, _ := tg.Get(ctx, name); string(data) != "writer "+strconv.Itoa(wins[0]) {
			t.Fatalf("manifest %q, want the winner's", data)
		}
	})

	t.Run("list", func(t *testing.T) {
		tg := newTarget(t)
		names := []string{"a/objects/v1-meta-00", "a/objects/v1-shard-0-11", "a/manifest", "b/objects/x", "ab/manifest"}
		for _, n := range names {
			if err := tg.PutObject(ctx, n, []byte(n)); err != nil {
				t.Fatal(err)
			}
		}
		for prefix, want := range map[string][]string{
			"a/":             {"a/manifest", "a/objects/v1-meta-00", "a/objects/v1-shard-0-11"},
			"a/objects/":     {"a/objects/v1-meta-00", "a/objects/v1-shard-0-11"},
			"a/objects/v1-s": {"a/objects/v1-shard-0-11"},
			"a":              {"a/manifest", "a/objects/v1-meta-00", "a/objects/v1-shard-0-11", "ab/manifest"},
			"c/":             nil,
		} {
			got, err := tg.List(ctx, prefix)
			if err != nil {
				t.Fatalf("List(%q): %v", prefix, err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("List(%q) = %v, want %v", prefix, got, want)
			}
		}
	})

	t.Run("names", func(t *testing.T) {
		tg := newTarget(t)
		for _, bad := range []string{"", "/abs", "a//b", "a/", "../x", "a/../b", ".hidden", "a/.tmp-1", "a b", "a/b?c", "a\\b"} {
			if err := tg.PutObject(ctx, bad, []byte("x")); !errors.Is(err, ErrName) {
				t.Errorf("PutObject(%q) = %v, want ErrName", bad, err)
			}
			if _, err := tg.PutManifest(ctx, bad, []byte("x"), ""); !errors.Is(err, ErrName) {
				t.Errorf("PutManifest(%q) = %v, want ErrName", bad, err)
			}
			if _, _, err := tg.Get(ctx, bad); bad != "" && !errors.Is(err, ErrName) {
				t.Errorf("Get(%q) = %v, want ErrName", bad, err)
			}
		}
	})

	t.Run("list pages", func(t *testing.T) {
		if testing.Short() {
			t.Skip("writes 1,100 objects; skipped with -short")
		}
		tg := newTarget(t)
		const n = 1100 // more than one ListObjectsV2 page (1,000 keys)
		var want []string
		sem := make(chan struct{}, 16)
		var wg sync.WaitGroup
		for i := range n {
			name := fmt.Sprintf("p/objects/o%05d", i)
			want = append(want, name)
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				if err := tg.PutObject(ctx, name, []byte{byte(i)}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		got, err := tg.List(ctx, "p/")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("listed %d names, want %d", len(got), len(want))
		}
	})
}

func TestDirTarget(t *testing.T) {
	testTarget(t, func(t *testing.T) Target { return newDirTarget(t) })
}

// TestDirTargetTwoInstances races conditional writes through two DirTargets on one directory:
// they share no mutex, so only the flock on the lock file orders them, as it orders separate
// processes.
func TestDirTargetTwoInstances(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := NewDirTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewDirTarget(dir)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		_, etag, err := a.Get(ctx, "r/manifest")
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		results := make([]error, 2)
		for i, tg := range []*DirTarget{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, results[i] = tg.PutManifest(ctx, "r/manifest", []byte(fmt.Sprintf("round %d writer %d", round, i)), etag)
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range results {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrPrecondition):
				t.Fatal(err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers won, want 1 (%v)", round, won, results)
		}
	}
	// Temporary files never outlive a write, and List never shows them or the lock file.
	names, err := a.List(ctx, "")
	if err != nil || !slices.Equal(names, []string{"r/manifest"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "r"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("files left in r/: %v, %v", entries, err)
	}
}

// ---- S3, against versitygw ----

// s3Server is a versitygw for the test (see package s3test).
type s3Server = s3test.Server

func startVersityGW(t *testing.T) *s3Server { return s3test.Start(t) }

var bucketSeq struct {
	mu sync.Mutex
	n  int
}

// newS3Target creates a bucket of its own on srv and returns a target on it.
func newS3Target(t testing.TB, srv *s3Server, prefix string) *S3Target {
	t.Helper()
	ctx := context.Background()
	bucketSeq.mu.Lock()
	bucketSeq.n++
	bucket := "latchkey-test-" + strconv.Itoa(bucketSeq.n)
	bucketSeq.mu.Unlock()
	tg, err := NewS3Target(ctx, S3Config{
		Bucket: bucket, Prefix: prefix, Endpoint: srv.Endpoint, Region: "us-east-1",
		AccessKey: srv.Access, SecretKey: srv.Secret, PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	return tg
}

func TestS3Target(t *testing.T) {
	srv := startVersityGW(t)
	testTarget(t, func(t *testing.T) Target { return newS3Target(t, srv, "snapshots") })
}

// TestS3TargetPrefix checks that the configured prefix is applied to every key and hidden
// from names.
func TestS3TargetPrefix(t *testing.T) {
	srv := startVersityGW(t)
	ctx := context.Background()
	tg := newS3Target(t, srv, "env/prod") // no trailing slash: added
	if err := tg.PutObject(ctx, "r/objects/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	out, err := tg.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(tg.bucket), Key: aws.String("env/prod/r/objects/x")})
	if err != nil {
		t.Fatalf("object not under the prefix: %v", err)
	}
	if aws.ToString(out.CacheControl) != objectCacheControl {
		t.Errorf("Cache-Control %q, want %q", aws.ToString(out.CacheControl), objectCacheControl)
	}
	names, err := tg.List(ctx, "r/")
	if err != nil || !slices.Equal(names, []string{"r/objects/x"}) {
		t.Fatalf("List = %v, %v", names, err)
	}
}
