package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/controlplane/config"
	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/edge/demo"
	"github.com/latchkeyhq/latchkey/edge/proxy"
	edgesync "github.com/latchkeyhq/latchkey/edge/sync"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
)

// devSetup is what `latchkey dev` started, for the banner and for tests.
type devSetup struct {
	ControlPlane, Edge, Upstream string // base URLs
	AdminKey                     string
	SampleKey, SampleKeyID       string
	ReadOnlyKey                  string
	TrustedKey                   string
	DataDir                      string
}

// dev runs the whole thing in one process on embedded defaults: control plane (SQLite, local
// snapshot directory), edge (native core, or --wasm), and a demo upstream; then it creates two
// sample keys and prints what to try.
func (e *env) dev(ctx context.Context, args []string) error {
	return e.devRun(ctx, args, nil)
}

func (e *env) devRun(ctx context.Context, args []string, ready chan<- *devSetup) error {
	fs := e.flagSet("dev", "dev [flags]")
	cpAddr := fs.String("addr", "127.0.0.1:8080", "control plane listen address")
	edgeAddr := fs.String("edge-addr", "127.0.0.1:8081", "edge listen address")
	upAddr := fs.String("upstream-addr", "127.0.0.1:0", "demo upstream listen address")
	dataDir := fs.String("data-dir", "", "keep state here across runs (default: a new temporary directory, removed at exit)")
	wasmPath := fs.String("wasm", "", "decide with this verifier module on wazero (default: the native core)")
	quiet := fs.Bool("quiet", false, "log warnings only")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))

	dir := *dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "latchkey-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	// dev is self-contained: it ignores LATCHKEY_DATABASE_URL and S3 settings a shell may hold.
	cfg := config.Config{Addr: *cpAddr, DataDir: dir, LogLevel: "info", ShutdownTimeout: 5 * time.Second}
	if err := cfg.Validate(); err != nil {
		return err
	}
	devEnv := func(k string) string {
		switch k {
		case signer.EnvMasterKey, signer.EnvMasterKeyFile, signer.EnvManifestKeyFile:
			return ""
		}
		return e.getenv(k)
	}

	listen := func(addr, what, flag string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: listen on %s: %w (choose another with --%s)", what, addr, err, flag)
		}
		return ln, nil
	}
	cpLn, err := listen(*cpAddr, "control plane", "addr")
	if err != nil {
		return err
	}
	defer cpLn.Close()
	edgeLn, err := listen(*edgeAddr, "edge", "edge-addr")
	if err != nil {
		return err
	}
	defer edgeLn.Close()
	upLn, err := listen(*upAddr, "upstream", "upstream-addr")
	if err != nil {
		return err
	}
	defer upLn.Close()

	cp, err := config.Open(ctx, cfg, config.Options{Getenv: devEnv, Logger: logger})
	if err != nil {
		return err
	}
	defer cp.Close()

	// On return: stop everything, then wait for it, so nothing writes to the data directory
	// or the store once they are closed or removed.
	var running sync.WaitGroup
	defer running.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4)
	goRun := func(f func() error) { running.Go(func() { errc <- f() }) }
	goRun(func() error { return cp.ServeHandler(ctx, cpLn, keysPage(cp.API.Handler())) })

	upSrv := &http.Server{Handler: demo.Handler(demo.Options{}), ReadHeaderTimeout: 10 * time.Second}
	goRun(func() error { return serveUntil(ctx, upSrv, upLn) })

	var module []byte
	if *wasmPath != "" {
		if module, err = os.ReadFile(*wasmPath); err != nil {
			return fmt.Errorf("wasm: %w", err)
		}
	}
	upURL := &url.URL{Scheme: "http", Host: upLn.Addr().String()}
	edge, err := proxy.New(ctx, proxy.Config{
		Upstream: upURL, Realm: "default", Trusted: []snapshot.TrustedKey{cp.ManifestKey.Trusted()},
		Source: edgesync.DirSource{Root: cfg.SnapshotPath()}, StateDir: filepath.Join(dir, "edge-state"),
		Poll: time.Second, Wasm: module, PathPrefix: "/_latchkey", Logger: logger,
	})
	if err != nil {
		return err
	}
	defer edge.Close(context.WithoutCancel(ctx))
	goRun(func() error { return edge.Run(ctx) })

	s := &devSetup{
		ControlPlane: "http://" + cpLn.Addr().String(), Edge: "http://" + edgeLn.Addr().String(),
		Upstream: upURL.String(), AdminKey: cp.AdminKey, TrustedKey: cp.ManifestKey.PublicText(), DataDir: dir,
	}
	if s.AdminKey == "" {
		fmt.Fprintf(e.stdout, "latchkey dev: reusing %s; its admin key was printed on its first run\n", dir)
	} else if err := s.sampleKeys(ctx); err != nil {
		return fmt.Errorf("creating the sample keys: %w", err)
	}
	// The edge serves once the sample keys exist: the handoff page's backend mints with one.
	edgeSrv := &http.Server{Handler: newHandoffBackend(s).handler(edge.Handler()), ReadHeaderTimeout: 10 * time.Second}
	goRun(func() error { return serveUntil(ctx, edgeSrv, edgeLn) })
	// Wait for the edge to hold the first snapshot, so the curl lines work at once.
	deadline := time.Now().Add(10 * time.Second)
	for edge.Health().Status != "ok" && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errc:
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
	s.printBanner(e.stdout, *wasmPath)
	if ready != nil {
		ready <- s
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
}

func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// sampleKeys creates, through the API like any client, a key that may read and steer and a
// read-only one, both of org "acme".
func (s *devSetup) sampleKeys(ctx context.Context) error {
	create := func(name string, scopes []string) (secret, id string, err error) {
		body, _ := json.Marshal(map[string]any{"type": "live", "name": name, "org": "acme", "scopes": scopes})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.ControlPlane+"/v1/keys", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+s.AdminKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return "", "", err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			return "", "", fmt.Errorf("POST /v1/keys: %s: %s", resp.Status, raw)
		}
		var out struct {
			Key struct {
				ID string `json:"id"`
			} `json:"key"`
			Secret string `json:"secret"`
		}
		if err := json.Unmarshal(raw, &out); err != nil {
			return "", "", err
		}
		return out.Secret, out.Key.ID, nil
	}
	var err error
	if s.SampleKey, s.SampleKeyID, err = create("dev sample", []string{"read", "steer"}); err != nil {
		return err
	}
	s.ReadOnlyKey, _, err = create("dev read-only", []string{"read"})
	return err
}

func (s *devSetup) printBanner(w io.Writer, wasm string) {
	decider := "the native core"
	if wasm != "" {
		decider = "the Wasm verifier " + wasm
	}
	fmt.Fprintf(w, `
latchkey dev is running (state in %s; Ctrl-C stops it).

  control plane  %s   (API, /openapi.yaml, /metrics)
  edge           %s   (decides with %s; /_latchkey/healthz, /_latchkey/metrics)
  demo upstream  %s   (only the edge should call it: it trusts the identity headers)
  manifest key   %s   (what every edge pins)

`, s.DataDir, s.ControlPlane, s.Edge, decider, s.Upstream, s.TrustedKey)
	if s.AdminKey == "" {
		fmt.Fprintf(w, "In a browser:\n  %s   keys page: sign in with the admin key of the first run\n\n", s.ControlPlane+keysPagePath)
		return
	}
	fmt.Fprintf(w, `  admin key      %s
  sample key     %s   (org acme, scopes read steer, id %s)
  read-only key  %s   (org acme, scope read)

Try:
  export ADMIN=%s KEY=%s RO=%s
  curl -i %s/hello -H "Authorization: Bearer $KEY"                       # 200, upstream sees X-Latchkey-* identity
  curl -i %s/hello                                                         # 401: no credential
  curl -i %s/hello -H "Authorization: Bearer ${KEY}x"                     # 401: checksum fails, no lookup
  curl -i -X POST %s/sessions/s1/messages -H "Authorization: Bearer $RO"   # 403: read-only key cannot steer
  TOKEN=$(curl -s %s/v1/sessions/s1/client-tokens -H "Authorization: Bearer $KEY" \
          -H "Content-Type: application/json" -d '{"scopes":["read","steer"],"ttl":300}' | sed 's/.*"token":"\([^"]*\)".*/\1/')
  curl -N "%s/sessions/s1/events?token=$TOKEN"                             # SSE stream; ?token= never reaches the upstream
  curl -i "%s/sessions/s2/events?token=$TOKEN"                             # 403: the token is bound to session s1
  curl -s -X POST %s/v1/keys/%s/revoke -H "Authorization: Bearer $ADMIN" >/dev/null
  sleep 1; curl -i %s/hello -H "Authorization: Bearer $KEY"               # 401: revoked, within about a second

In a browser:
  %s
      session handoff: the dev server mints a client token as your backend would; the page streams
      and steers through the edge with it, then sees the 401 once you revoke the session or it expires
  %s#admin=%s
      API keys: list, create, rotate, revoke (the #admin= fragment signs you in; a browser never sends it)

`, s.AdminKey, s.SampleKey, s.SampleKeyID, s.ReadOnlyKey, s.AdminKey, s.SampleKey, s.ReadOnlyKey,
		s.Edge, s.Edge, s.Edge, s.Edge, s.ControlPlane, s.Edge, s.Edge, s.ControlPlane, s.SampleKeyID, s.Edge,
		s.Edge+handoffPagePath, s.ControlPlane+keysPagePath, s.AdminKey)
}
