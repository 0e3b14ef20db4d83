package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/latchkeyhq/latchkey/controlplane/config"
)

func (e *env) serve(ctx context.Context, args []string) error {
	fs := e.flagSet("serve", "serve [flags]")
	flagUsage := fs.Usage
	fs.Usage = func() {
		flagUsage()
		fmt.Fprint(e.stderr, serveEnvHelp)
	}
	cfg, err := config.FromEnvAndFlags(fs, args, e.getenv)
	if err != nil {
		// A flag the FlagSet refused (already printed with the usage), or a setting that
		// cannot work: both are the command line's fault.
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("serve: unexpected argument %q", fs.Arg(0))
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // Validate accepted it
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	// Listen first: a taken port fails before anything is created or printed.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	cp, err := config.Open(ctx, cfg, config.Options{Getenv: e.getenv, Logger: logger})
	if err != nil {
		return err
	}
	defer cp.Close()

	if cp.AdminKey != "" {
		printAdminBanner(e, cp.AdminKey)
	}
	fmt.Fprintf(e.stderr, "latchkey: control plane listening on http://%s\n", ln.Addr())
	fmt.Fprintf(e.stderr, "latchkey: store %s; snapshots to %s\n", cfg.RedactedStoreURL(), snapshotWhere(cfg))
	fmt.Fprintf(e.stderr, "latchkey: manifest public key (pin it on every edge): %s\n", cp.ManifestKey.PublicText())
	logger.Info("serving", "addr", ln.Addr().String(), "manifest_key", cp.ManifestKey.KeyID())
	return cp.Serve(ctx, ln)
}

const serveEnvHelp = `
A flag wins over its environment variable. Secrets come from the environment only:
  LATCHKEY_MASTER_KEY         32-byte master key, base64 or hex (default: <data-dir>/master.key,
                              created on first start)
  LATCHKEY_MASTER_KEY_FILE    file holding it instead
  LATCHKEY_MANIFEST_KEY_FILE  sealed manifest signing key (default: <data-dir>/manifest.key)
  LATCHKEY_S3_ACCESS_KEY, LATCHKEY_S3_SECRET_KEY
                              static S3 credentials (default: the AWS chain, AWS_* variables)
`

func printAdminBanner(e *env, key string) {
	line := strings.Repeat("=", 78)
	fmt.Fprintf(e.stderr, `%s
  ADMIN KEY of realm "default" (created now, shown this one time only):

    %s

  Store it in a secret manager. Use it as LATCHKEY_ADMIN_KEY for the latchkey
  CLI, or as "Authorization: Bearer <key>" on the API. It cannot be shown again;
  if lost, create another admin key with one you still hold.
%s
`, line, key, line)
}

func snapshotWhere(c config.Config) string {
	if c.S3.Bucket != "" {
		return "s3://" + c.S3.Bucket + "/" + c.S3.Prefix
	}
	return c.SnapshotPath()
}
