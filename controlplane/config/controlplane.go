package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkeyhq/latchkey/controlplane/api"
	"github.com/latchkeyhq/latchkey/controlplane/publisher"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// Options are what Open takes besides the Config: the process's environment, clock, logger
// and metrics registry, injected so tests run several control planes in one process.
type Options struct {
	Getenv   func(string) string // nil: os.Getenv (LATCHKEY_MASTER_KEY, …_FILE, LATCHKEY_MANIFEST_KEY_FILE)
	Now      func() time.Time    // nil: time.Now
	Logger   *slog.Logger        // nil: discard
	Registry *prometheus.Registry
}

// ControlPlane is an assembled control plane, ready to Serve.
type ControlPlane struct {
	Config      Config
	Store       store.Store
	Sealer      *signer.Sealer
	ManifestKey *signer.ManifestKey
	Target      publisher.Target
	Publisher   *publisher.Publisher
	API         *api.Server
	// AdminKey is the bootstrap admin key, set only when this Open created it: the one and
	// only time its plaintext exists outside the caller's hands.
	AdminKey string
	logger   *slog.Logger
}

// String describes the control plane without its secrets.
func (cp *ControlPlane) String() string {
	return "config.ControlPlane{" + cp.Config.String() + " manifest-key=" + cp.ManifestKey.PublicText() + "}"
}

// GoString keeps %#v from printing the admin key.
func (cp *ControlPlane) GoString() string { return cp.String() }

// ErrKeyMismatch: the master key at hand does not open what the database holds.
var ErrKeyMismatch = errors.New("config: master key does not match the database")

// Open opens the store, loads (or on a fresh database creates) the master key and manifest
// key, checks the master key opens every realm's active signing key, bootstraps the
// default realm, and assembles the publisher and API. It serves nothing yet.
//
// Keys are created only when the database holds no realm: against an existing database a
// new master key would not open its signing keys, and a new manifest key would make every
// pinned edge refuse the next snapshot, so a missing key is then an error, not a default.
func Open(ctx context.Context, c Config, o Options) (_ *ControlPlane, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	getenv, now, logger := o.Getenv, o.Now, o.Logger
	if getenv == nil {
		getenv = os.Getenv
	}
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	// SQLite needs its directory; the key files create theirs as needed, so a PostgreSQL
	// deployment with its keys in the environment writes nothing to the data directory.
	if path, ok := sqlitePath(c.StoreURL()); ok {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("database directory: %w", err)
		}
	}

	st, err := store.Open(ctx, c.StoreURL())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", redactURL(c.StoreURL()), err)
	}
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	realms, err := st.ListRealms(ctx)
	if err != nil {
		return nil, fmt.Errorf("list realms: %w", err)
	}
	fresh := len(realms) == 0

	master, err := signer.LoadMasterKey(getenv, c.DataDir, fresh)
	if err != nil {
		if !fresh {
			return nil, fmt.Errorf("the database already holds realms, so its master key is needed (a new one would not open their signing keys): %w", err)
		}
		return nil, err
	}
	sealer, err := signer.NewSealer(master)
	clear(master)
	if err != nil {
		return nil, err
	}
	mk, err := signer.LoadManifestKey(getenv, c.DataDir, sealer, fresh)
	if err != nil {
		if !fresh {
			return nil, fmt.Errorf("the database already holds realms, so the manifest key their edges pin is needed: %w", err)
		}
		return nil, err
	}
	// Fail at start, not at the first mint, when the master key is not the database's.
	for _, r := range realms {
		sk, err := st.ActiveSigningKey(ctx, r.Name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("realm %s: signing key: %w", r.Name, err)
		}
		if len(sk.PrivateSealed) == 0 {
			continue // held by a KMS, not sealed here
		}
		if _, err := signer.LoadTokenSigner(sk, sealer); err != nil {
			return nil, fmt.Errorf("%w: realm %s: signing key %s does not open (wrong %s?): %w",
				ErrKeyMismatch, r.Name, sk.KID, signer.EnvMasterKey, err)
		}
	}

	adminKey, created, err := api.Bootstrap(ctx, st, sealer, now())
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if !created {
		adminKey = ""
	}

	var target publisher.Target
	if c.S3.Bucket != "" {
		target, err = publisher.NewS3Target(ctx, c.S3)
	} else {
		target, err = publisher.NewDirTarget(c.SnapshotPath())
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot target: %w", err)
	}
	pub, err := publisher.New(publisher.Options{Store: st, Target: target, Signer: mk, Now: now, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	srv, err := api.New(api.Options{Store: st, Sealer: sealer, Publisher: pub, Now: now, Logger: logger, Registry: o.Registry})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	return &ControlPlane{
		Config: c, Store: st, Sealer: sealer, ManifestKey: mk, Target: target,
		Publisher: pub, API: srv, AdminKey: adminKey, logger: logger,
	}, nil
}

// sqlitePath returns the file a SQLite store URL names (see store.Open).
func sqlitePath(u string) (string, bool) {
	switch {
	case strings.HasPrefix(u, "sqlite://"):
		return strings.TrimPrefix(u, "sqlite://"), true
	case strings.HasPrefix(u, "sqlite:"):
		return strings.TrimPrefix(u, "sqlite:"), true
	}
	return "", false
}

// Serve runs the snapshot publisher and the HTTP API on ln until ctx is done or either
// fails, then shuts down gracefully: the listener closes, requests in flight get
// Config.ShutdownTimeout to finish, and the publisher stops. It does not close the store.
func (cp *ControlPlane) Serve(ctx context.Context, ln net.Listener) error {
	return cp.ServeHandler(ctx, ln, cp.API.Handler())
}

// ServeHandler is Serve with h in front: h serves what it adds (a page beside the API, say)
// and hands the rest to cp.API.Handler().
func (cp *ControlPlane) ServeHandler(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(cp.logger.Handler(), slog.LevelWarn),
	}
	// The publisher outlives ctx by the HTTP shutdown, so changes made by the last requests
	// are not cut off mid-publication.
	pubCtx, stopPublisher := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPublisher()
	pubDone := make(chan error, 1)
	go func() { pubDone <- cp.Publisher.Run(pubCtx) }()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-srvDone:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-pubDone:
		pubDone = nil
		runErr = fmt.Errorf("snapshot publisher stopped: %w", err)
	}
	cp.logger.Info("shutting down", "timeout", cp.Config.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cp.Config.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && runErr == nil {
		runErr = fmt.Errorf("graceful shutdown: %w", err)
	}
	stopPublisher()
	if pubDone != nil {
		if err := <-pubDone; err != nil && !errors.Is(err, context.Canceled) && runErr == nil {
			runErr = fmt.Errorf("snapshot publisher: %w", err)
		}
	}
	return runErr
}

// Close flushes the API's queued audit records, then releases the store.
func (cp *ControlPlane) Close() error {
	apiErr := cp.API.Close()
	if err := cp.Store.Close(); err != nil {
		return err
	}
	return apiErr
}
