package main

import (
	"context"
	"fmt"
	"time"

	"github.com/latchkeyhq/latchkey/wasm/httpwasm/config"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// pluginFormats are what `snapshot plugin-config --for` can print.
var pluginFormats = []string{"httpwasm", "traefik", "dapr"}

// snapshotPluginConfig reads the published snapshot (verified like snapshot inspect) and prints
// it as the configuration of a Wasm plugin that carries its snapshot in its configuration: the
// http-wasm guest's base64 text, alone or inside a Traefik dynamic configuration or a Dapr
// component, ready to paste or to write to a file a deployment watches.
func (e *env) snapshotPluginConfig(ctx context.Context, args []string) error {
	const cmd = "snapshot plugin-config"
	fset := e.flagSet(cmd, cmd+" --for httpwasm|traefik|dapr [--dir D | --url U | --s3-bucket B] [--realm R] [--trusted-key K]... [--max-staleness D]")
	sf := addSourceFlags(fset)
	format := fset.String("for", "", "output: httpwasm (the guest configuration, base64), traefik (a dynamic configuration's middleware), dapr (a middleware component)")
	staleness := fset.Duration("max-staleness", 0, "deny every request (503) once the snapshot is older than this (0: until the manifest expires)")
	cacheSize := fset.Int("token-cache-size", 0, "verified-token cache entries per guest instance (0: default 4096; negative: disabled)")
	wasmURL := fset.String("wasm-url", "file://wasm/httpwasm-tinygo.wasm", "--for dapr: where Dapr loads the guest from")
	pos, err := parse(fset, args)
	if err != nil {
		return err
	}
	if err := wantArgs(cmd, pos); err != nil {
		return err
	}
	switch *format {
	case "httpwasm", "traefik", "dapr":
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
