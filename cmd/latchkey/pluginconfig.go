package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/latchkeyhq/latchkey/wasm/httpwasm/config"
	pwconfig "github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// pluginFormats are what `snapshot plugin-config --for` can print.
var pluginFormats = []string{"httpwasm", "traefik", "dapr", "envoy"}

// envoyFlags names the flag behind each member of the proxy-wasm configuration a flag sets.
var envoyFlags = map[string]string{
	"refresh.cluster": "--refresh-cluster", "refresh.authority": "--refresh-authority",
	"refresh.path_prefix": "--refresh-path-prefix", "refresh.interval_seconds": "--refresh-interval",
	"max_staleness_seconds": "--max-staleness", "token_cache_size": "--token-cache-size",
}

// snapshotPluginConfig reads the published snapshot (verified like snapshot inspect) and prints
// it as the configuration of a Wasm plugin that carries its snapshot in its configuration: the
// http-wasm guest's base64 text, alone or inside a Traefik dynamic configuration or a Dapr
// component, or the proxy-wasm filter's JSON (which may also name the Envoy cluster it
// refreshes from), ready to paste or to write to a file a deployment watches.
func (e *env) snapshotPluginConfig(ctx context.Context, args []string) error {
	const cmd = "snapshot plugin-config"
	fset := e.flagSet(cmd, cmd+" --for httpwasm|traefik|dapr|envoy [--dir D | --url U | --s3-bucket B] [--realm R] [--trusted-key K]... [--max-staleness D]")
	sf := addSourceFlags(fset)
	format := fset.String("for", "", "output: httpwasm (the guest configuration, base64), traefik (a dynamic configuration's middleware), dapr (a middleware component), envoy (the proxy-wasm filter's JSON configuration)")
	staleness := fset.Duration("max-staleness", 0, "deny every request (503) once the snapshot is older than this (0: until the manifest expires)")
	cacheSize := fset.Int("token-cache-size", 0, "verified-token cache entries per guest instance (0: default 4096; negative: disabled)")
	wasmURL := fset.String("wasm-url", "file://wasm/httpwasm-tinygo.wasm", "--for dapr: where Dapr loads the guest from")
	cluster := fset.String("refresh-cluster", "", "--for envoy: the Envoy cluster serving the snapshot store, to fetch newer snapshots from (default: none, the snapshot is fixed)")
	authority := fset.String("refresh-authority", "", "--for envoy: the Host of those requests (default: the cluster name)")
	pathPrefix := fset.String("refresh-path-prefix", "", "--for envoy: path under which the store keeps <realm>/manifest")
	interval := fset.Duration("refresh-interval", 30*time.Second, "--for envoy: how often to fetch the manifest")
	pos, err := parse(fset, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	switch *format {
	case "httpwasm", "traefik", "dapr", "envoy":
	case "":
		return usagef("%s: --for is required (one of %v)", cmd, pluginFormats)
	default:
		return usagef("%s: --for %q: want one of %v", cmd, *format, pluginFormats)
	}
	if *staleness < 0 {
		return usagef("%s: --max-staleness %v: must not be negative", cmd, *staleness)
	}
	if *cacheSize > 1<<30 || *cacheSize < -1<<30 {
		return usagef("%s: --token-cache-size %d: out of range", cmd, *cacheSize)
	}
	if *interval < time.Second {
		return usagef("%s: --refresh-interval %v: at least 1s", cmd, *interval)
	}
	src, keys, _, err := e.resolve(ctx, cmd, sf)
	if err != nil {
		return err
	}
	report, snap, err := inspect(ctx, src, *sf.realm, keys, time.Now())
	if err != nil {
		return err
	}
	if report.Expired {
		return fmt.Errorf("manifest of realm %s expired at %s: a plugin would refuse it (is the control plane publishing?)", report.Realm, report.ExpiresAt)
	}
	if *format == "envoy" {
		pc := &pwconfig.Config{ManifestKeys: keys, MaxStalenessSeconds: int64(*staleness / time.Second), TokenCacheSize: *cacheSize,
			Snapshot: &pwconfig.Snapshot{Manifest: snap.manifest, Objects: snap.objects, Delta: snap.delta}}
		if *cluster != "" {
			pc.Refresh = &pwconfig.Refresh{Cluster: *cluster, Authority: firstNonEmpty(*authority, *cluster),
				PathPrefix: strings.TrimRight(*pathPrefix, "/"), Realm: report.Realm, IntervalSeconds: int64(*interval / time.Second), TimeoutMillis: pwconfig.DefaultTimeoutMillis}
		}
		text := pwconfig.Marshal(pc)
		// What the filter would refuse must not be printed as if it would work.
		if _, err := pwconfig.Parse(text); err != nil {
			var fe *pwconfig.FieldError
			if errors.As(err, &fe) {
				if flag, ok := envoyFlags[fe.Field]; ok {
					return usagef("%s: %s: %s", cmd, flag, fe.Reason)
				}
			}
			return usagef("%s: %v", cmd, err)
		}
		_, err = fmt.Fprintf(e.stdout, "%s\n", text)
		return err
	}
	text, err := config.Text(&config.Config{
		MaxStalenessSeconds: int64(*staleness / time.Second), TokenCacheSize: int32(*cacheSize),
		Load: abi.Load{Trusted: keys, Manifest: snap.manifest, Objects: snap.objects, Delta: snap.delta},
	})
	if err != nil {
		return fmt.Errorf("%s: %w", cmd, err)
	}
	switch *format {
	case "traefik":
		_, err = fmt.Fprintf(e.stdout, "# latchkey snapshot %s version %d (expires %s)\nhttp:\n  middlewares:\n    latchkey:\n      plugin:\n        latchkey:\n          config: %q\n",
			report.Realm, report.Version, report.ExpiresAt, text)
	case "dapr":
		_, err = fmt.Fprintf(e.stdout, "# latchkey snapshot %s version %d (expires %s)\napiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: latchkey\nspec:\n  type: middleware.http.wasm\n  version: v1\n  metadata:\n    - name: url\n      value: %q\n    - name: guestConfig\n      value: %q\n",
			report.Realm, report.Version, report.ExpiresAt, *wasmURL, text)
	default:
		_, err = fmt.Fprintln(e.stdout, text)
	}
	return err
}
