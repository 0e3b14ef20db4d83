package proxy

import (
	"context"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	edgesync "github.com/latchkeyhq/latchkey/edge/sync"
	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/internal/wasmbuild"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

var (
	builderOnce sync.Once
	builder     *wasmbuild.Builder
	builderErr  error
)

// releaseModule is the verifier latchkey-edge and `make dev` run: the accelerated TinyGo build.
func releaseModule(t *testing.T) []byte {
	t.Helper()
	builderOnce.Do(func() { builder, _, builderErr = wasmbuild.Temp("../..") })
	if builderErr != nil {
		t.Fatal(builderErr)
	}
	return builder.Module(t, wasmbuild.Variants[0])
}

// TestConformance runs the cross-host conformance suite (examples/profiles/conformance) on
// latchkey-edge as deployed: the snapshot fetched over HTTP from a publisher's layout by the
// syncer, the filter (native core, or the accelerated TinyGo verifier on wazero), the reverse
// proxy, all over real sockets: TestConformance/latchkey-edge[-wasm]/<profile>/<case>.
func TestConformance(t *testing.T) {
	host := func(name string, wasm func(*testing.T) []byte) conformance.Host {
		return conformance.Host{Name: name, Open: func(t *testing.T, f *conformance.Fixture) func(*testing.T, *conformance.Exchange) *conformance.Response {
			var module []byte
			if wasm != nil {
				module = wasm(t)
			}
			store, err := f.Handler()
			if err != nil {
				t.Fatal(err)
			}
			storeSrv := httptest.NewServer(store)
			t.Cleanup(storeSrv.Close)
			rec := &conformance.Recorder{}
			upSrv := httptest.NewServer(rec)
			t.Cleanup(upSrv.Close)
			up, _ := url.Parse(upSrv.URL)
			// A new edge per case: fresh token caches and rate buckets.
			e, err := New(context.Background(), Config{
				Upstream: up, Realm: f.Realm, Trusted: []snapshot.TrustedKey{f.Trusted},
				Source: edgesync.HTTPSource{Base: storeSrv.URL + "/"}, Wasm: module,
				CompilationCacheDir: filepath.Join(os.TempDir(), "latchkey-test-wazero"),
				Now:                 func() time.Time { return time.Unix(f.Now, 0) },
				PathPrefix:          "/_latchkey",
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close(context.Background()) })
			if changed, err := e.Syncer.Poll(context.Background()); err != nil || !changed {
				t.Fatalf("first poll: changed %v, %v", changed, err)
			}
			srv := httptest.NewServer(e.Handler())
			t.Cleanup(srv.Close)
			return func(t *testing.T, ex *conformance.Exchange) *conformance.Response {
				return conformance.Send(t, srv.URL, ex, rec)
			}
		}}
	}
	conformance.Run(t, host("latchkey-edge", nil), host("latchkey-edge-wasm", releaseModule))
}
