//go:build !wasip1

package main

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
)

// wazeroFakeEpoch is the wall clock wazero gives a module whose host configures no real one
// (wazero's platform.FakeEpochNanos: 2022-01-01T00:00:00Z, one millisecond more per reading),
// which is what proxytest.NewWasmVMContext does: the host clock the filter sees under the
// emulator.
const wazeroFakeEpoch = 1640995200

func agrenting(t *testing.T) *profiles.Built {
	t.Helper()
	b, err := profiles.Build("agrenting", conformance.Seed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClock runs the release builds (no latchkey_fixedclock tag): they decide at the host's
// clock, so a snapshot issued at the emulator's clock is served and the conformance fixture,
// issued in 2026, is refused as issued in the future (every request 503); and they refuse a
// configuration with now_override.
func TestClock(t *testing.T) {
	for _, build := range []string{"go-release", "tinygo-release"} {
		t.Run(build, func(t *testing.T) {
			now := agrenting(t)
			now.Contents.IssuedAt, now.Contents.ExpiresAt = wazeroFakeEpoch-60, wazeroFakeEpoch+3600
			if err := now.Publish(); err != nil {
				t.Fatal(err)
			}
			fixture := agrenting(t)
			realClock := func(c *config.Config) { c.NowOverride = 0 }
			for _, c := range []struct {
				name string
				cfg  []byte
				want int
				log  string
			}{
				{"snapshot-issued-at-the-host-clock", fixedConfig(now, realClock), conformance.UpstreamStatus, ""},
				{"snapshot-from-the-host-future", fixedConfig(fixture, realClock), http.StatusServiceUnavailable, "in the future"},
				{"release-refuses-now-override", fixedConfig(fixture, nil), http.StatusServiceUnavailable, "now_override"},
			} {
				t.Run(c.name, func(t *testing.T) {
					f := startFilter(t, build, c.cfg)
					defer f.close()
					if got := f.get(t, wallet, "Authorization", "Bearer "+now.Keys["user"]).Status; got != c.want {
						t.Fatalf("status %d, want %d (logs:\n%s)", got, c.want, f.logs())
					}
					if logs := f.errorLogs(); (c.log == "") != (logs == "") || !strings.Contains(logs, c.log) {
						t.Fatalf("error logs %q, want %q", logs, c.log)
					}
				})
			}
		})
	}
}

// TestBadConfiguration: a configuration that does not parse, or whose snapshot does not load,
// is logged as an error naming the cause, and every request is denied 503 with the default
// rendering; a configuration that does not parse starts no refresh.
func TestBadConfiguration(t *testing.T) {
	b := agrenting(t)
	good := func(edit func(*config.Config)) []byte {
		return fixedConfig(b, func(c *config.Config) {
			c.Refresh = &config.Refresh{Cluster: cluster, Authority: "s", Realm: "agrenting", IntervalSeconds: 30, TimeoutMillis: 5000}
			if edit != nil {
				edit(c)
			}
		})
	}
	other, err := profiles.Build("agrenting", conformance.Seed+1)
	if err != nil {
		t.Fatal(err)
	}
	unavailable := policy.DefaultError(policy.ReasonUnavailable)
	for _, c := range []struct {
		name   string
		cfg    []byte
		log    string
		starts bool // whether a refresh still runs (the configuration parsed)
	}{
		{"empty", nil, "no plugin configuration", false},
		{"not-json", []byte("{"), "proxywasm config: want a string", false},
		{"unknown-member", bytes.Replace(good(nil), []byte(`"refresh":`), []byte(`"max_stalness_seconds":1,"refresh":`), 1), `max_stalness_seconds: unknown member`, false},
		{"no-manifest-key", good(func(c *config.Config) { c.ManifestKeys = nil }), "manifest_keys: required", false},
		{"bad-base64", bytes.Replace(good(nil), []byte(`"manifest":"`), []byte(`"manifest":"*`), 1), "snapshot.manifest: not standard, padded base64", false},
		{"negative-interval", bytes.Replace(good(nil), []byte(`"interval_seconds":30`), []byte(`"interval_seconds":-30`), 1), "refresh.interval_seconds: must be in 1..86400", false},
		{"snapshot-signed-by-a-key-not-pinned", good(func(c *config.Config) { c.ManifestKeys = []snapshot.TrustedKey{other.Trusted} }), "initial snapshot refused: snapshot: manifest signature", true},
		{"expired-snapshot", good(func(c *config.Config) { c.NowOverride = (b.Now + 2*86400) * 1e9 }), "initial snapshot refused: snapshot: manifest expired", true},
		{"snapshot-of-another-realm", good(func(c *config.Config) { c.Refresh.Realm = "opencomputer" }), `refresh.realm is "opencomputer"`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			eachCompiler(t, func(t *testing.T, compiler string) {
				f := startFilter(t, compiler, c.cfg)
				defer f.close()
				resp := f.get(t, wallet, "Authorization", "Bearer "+b.Keys["user"])
				if resp.Status != http.StatusServiceUnavailable || !bytes.Equal(resp.Body, unavailable.Body) || resp.Upstream != nil {
					t.Fatalf("status %d %q, want 503 %q", resp.Status, resp.Body, unavailable.Body)
				}
				logs := f.errorLogs()
				if !strings.Contains(logs, c.log) || !strings.Contains(logs, "every request is denied 503") {
					t.Fatalf("error logs %q, want %q", logs, c.log)
				}
				calls := len(f.host.GetCalloutAttributesFromContext(proxytest.PluginContextID))
				if (calls > 0) != c.starts {
					t.Fatalf("%d refresh calls, want a refresh: %v", calls, c.starts)
				}
			})
		})
	}
}
