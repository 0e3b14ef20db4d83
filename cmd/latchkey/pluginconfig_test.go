package main

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/httpwasm/config"
	pwconfig "github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// TestSnapshotPluginConfig: the published snapshot, printed as the http-wasm guest's
// configuration (alone, in a Traefik dynamic configuration, in a Dapr component), decodes and
// loads as the guest would load it, and a key created before publishing is allowed by it.
func TestSnapshotPluginConfig(t *testing.T) {
	s := startServer(t)
	env := s.env()
	key := secretRE.FindString(ok(t, env, "keys", "create", "--type", "live", "--org", "acme"))
	ok(t, env, "snapshot", "publish")
	dir := copySnapshots(t, s)
	pinned := s.cp.ManifestKey.PublicText()
	src := []string{"--dir", dir, "--trusted-key", pinned}

	check := func(text string) {
		t.Helper()
		var c config.Config
		if err := config.Decode([]byte(text), &c); err != nil {
			t.Fatalf("config does not decode: %v\n%s", err, text)
		}
		if c.MaxStalenessSeconds != 600 || c.NowOverride != 0 {
			t.Fatalf("options: %+v", c)
		}
		c.Load.Now = time.Now().UnixNano()
		st, err := c.Load.Open(nil, hostcrypto.Std)
		if err != nil {
			t.Fatalf("guest would refuse the snapshot: %v", err)
		}
		e := verifier.NewEngine(verifier.Options{Crypto: hostcrypto.Std})
		e.SetState(st)
		d := e.Decide(&verifier.Request{Now: c.Load.Now, Method: []byte("GET"), Path: []byte("/v1/anything"),
			Headers: []verifier.Header{{Name: []byte("authorization"), Value: []byte("Bearer " + key)}}})
		if !d.Allow {
			t.Fatalf("the published key is denied: %d %s", d.Status, d.Reason)
		}
		var info abi.LoadResult
		abi.Describe(st, &info)
		if info.Realm != "default" {
			t.Fatalf("realm %q", info.Realm)
		}
	}

	text := strings.TrimSpace(ok(t, env, append([]string{"snapshot", "plugin-config", "--for", "httpwasm", "--max-staleness", "10m"}, src...)...))
	check(text)

	var traefik struct {
		HTTP struct {
			Middlewares map[string]struct {
				Plugin map[string]struct {
					Config string `yaml:"config"`
				} `yaml:"plugin"`
			} `yaml:"middlewares"`
		} `yaml:"http"`
	}
	out := ok(t, env, append([]string{"snapshot", "plugin-config", "--for", "traefik", "--max-staleness", "10m"}, src...)...)
	if err := yaml.Unmarshal([]byte(out), &traefik); err != nil {
		t.Fatalf("traefik output is not YAML: %v\n%s", err, out)
	}
	check(traefik.HTTP.Middlewares["latchkey"].Plugin["latchkey"].Config)

	var dapr struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Type     string `yaml:"type"`
			Metadata []struct{ Name, Value string }
		} `yaml:"spec"`
	}
	out = ok(t, env, append([]string{"snapshot", "plugin-config", "--for", "dapr", "--max-staleness", "10m", "--wasm-url", "file:///plugins/latchkey.wasm"}, src...)...)
	if err := yaml.Unmarshal([]byte(out), &dapr); err != nil || dapr.Kind != "Component" || dapr.Spec.Type != "middleware.http.wasm" || len(dapr.Spec.Metadata) != 2 {
		t.Fatalf("dapr output: %v %+v\n%s", err, dapr, out)
	}
	if m := dapr.Spec.Metadata; m[0].Name != "url" || m[0].Value != "file:///plugins/latchkey.wasm" || m[1].Name != "guestConfig" {
		t.Fatalf("dapr metadata %+v", m)
	}
	check(dapr.Spec.Metadata[1].Value)

	// Envoy: the proxy-wasm filter's JSON, with the snapshot and, when asked, the cluster it
	// refreshes from.
	out = ok(t, env, append([]string{"snapshot", "plugin-config", "--for", "envoy", "--max-staleness", "10m",
		"--refresh-cluster", "latchkey_snapshots", "--refresh-path-prefix", "/latchkey/"}, src...)...)
	pc, err := pwconfig.Parse([]byte(strings.TrimSpace(out)))
	if err != nil {
		t.Fatalf("envoy output does not parse: %v\n%s", err, out)
	}
	if pc.Refresh == nil || pc.Refresh.Cluster != "latchkey_snapshots" || pc.Refresh.Authority != "latchkey_snapshots" ||
		pc.Refresh.PathPrefix != "/latchkey" || pc.Refresh.Realm != "default" || pc.Refresh.IntervalSeconds != 30 ||
		pc.MaxStalenessSeconds != 600 || len(pc.ManifestKeys) != 1 || pc.Snapshot == nil {
		t.Fatalf("envoy config: %+v %+v", pc, pc.Refresh)
	}
	check(mustText(t, &config.Config{MaxStalenessSeconds: pc.MaxStalenessSeconds, Load: abi.Load{Trusted: pc.ManifestKeys,
		Manifest: pc.Snapshot.Manifest, Objects: pc.Snapshot.Objects, Delta: pc.Snapshot.Delta}}))
	fails(t, env, 2, `--refresh-path-prefix`, append([]string{"snapshot", "plugin-config", "--for", "envoy",
		"--refresh-cluster", "c", "--refresh-path-prefix", "no-slash"}, src...)...)

	// Bad input names the flag; a snapshot signed by another key is refused.
	fails(t, env, 2, `--for is required`, append([]string{"snapshot", "plugin-config"}, src...)...)
	fails(t, env, 2, `--for "nginx"`, append([]string{"snapshot", "plugin-config", "--for", "nginx"}, src...)...)
	fails(t, env, 2, `--max-staleness -1s`, append([]string{"snapshot", "plugin-config", "--for", "httpwasm", "--max-staleness", "-1s"}, src...)...)
	fails(t, env, 1, `REFUSED`, "snapshot", "plugin-config", "--for", "httpwasm", "--dir", dir,
		"--trusted-key", "ed25519:"+strings.Repeat("A", 43))
}

func mustText(t *testing.T, c *config.Config) string {
	t.Helper()
	text, err := config.Text(c)
	if err != nil {
		t.Fatal(err)
	}
	return text
}
