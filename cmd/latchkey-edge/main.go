// Command latchkey-edge is a reverse proxy that authenticates every request offline, from the
// signed snapshots a latchkey control plane publishes, and forwards what is allowed to one
// upstream. Configuration: flags, LATCHKEY_EDGE_* environment variables, or a YAML file
// (--config); a flag wins over the environment, which wins over the file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/latchkeyhq/latchkey/controlplane/signer"
	"github.com/latchkeyhq/latchkey/edge/proxy"
	edgesync "github.com/latchkeyhq/latchkey/edge/sync"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "latchkey-edge:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

// Settings is the edge's configuration; the YAML file uses the same names.
type Settings struct {
	Listen       string        `yaml:"listen"`
	Upstream     string        `yaml:"upstream"`
	Realm        string        `yaml:"realm"`
	TrustedKeys  []string      `yaml:"trusted_keys"`
	SnapshotDir  string        `yaml:"snapshot_dir"`
	SnapshotURL  string        `yaml:"snapshot_url"`
	S3Bucket     string        `yaml:"s3_bucket"`
	S3Prefix     string        `yaml:"s3_prefix"`
	S3Endpoint   string        `yaml:"s3_endpoint"`
	S3Region     string        `yaml:"s3_region"`
	StateDir     string        `yaml:"state_dir"`
	Poll         time.Duration `yaml:"poll"`
	MaxStaleness time.Duration `yaml:"max_staleness"`
	Recheck      time.Duration `yaml:"recheck"`
	Wasm         string        `yaml:"wasm"`
	CacheDir     string        `yaml:"compilation_cache_dir"`
	AdminPrefix  string        `yaml:"admin_prefix"`
	LogLevel     string        `yaml:"log_level"`
}

// setting binds one field to its flag and environment variable.
type setting struct {
	flag, env, usage string
	str              *string
	dur              *time.Duration
	list             *[]string
}

func (s *Settings) table() []setting {
	return []setting{
		{flag: "listen", env: "LATCHKEY_EDGE_LISTEN", usage: "address to listen on (default 127.0.0.1:8081)", str: &s.Listen},
		{flag: "upstream", env: "LATCHKEY_EDGE_UPSTREAM", usage: "URL of the API allowed requests go to (required)", str: &s.Upstream},
		{flag: "realm", env: "LATCHKEY_EDGE_REALM", usage: "realm whose snapshots to follow (default \"default\")", str: &s.Realm},
		{flag: "trusted-key", env: "LATCHKEY_EDGE_TRUSTED_KEYS", usage: "pinned manifest key, ed25519:… or es256:… (repeatable; env: comma-separated; required)", list: &s.TrustedKeys},
		{flag: "snapshot-dir", env: "LATCHKEY_EDGE_SNAPSHOT_DIR", usage: "read snapshots from this directory (the control plane's snapshot dir)", str: &s.SnapshotDir},
		{flag: "snapshot-url", env: "LATCHKEY_EDGE_SNAPSHOT_URL", usage: "read snapshots over HTTP(S) from this base URL (a bucket or CDN)", str: &s.SnapshotURL},
		{flag: "s3-bucket", env: "LATCHKEY_EDGE_S3_BUCKET", usage: "read snapshots from this S3 bucket (AWS credential chain)", str: &s.S3Bucket},
		{flag: "s3-prefix", env: "LATCHKEY_EDGE_S3_PREFIX", usage: "key prefix in the bucket", str: &s.S3Prefix},
		{flag: "s3-endpoint", env: "LATCHKEY_EDGE_S3_ENDPOINT", usage: "S3-compatible endpoint URL (path-style addressing)", str: &s.S3Endpoint},
		{flag: "s3-region", env: "LATCHKEY_EDGE_S3_REGION", usage: "S3 region (default us-east-1)", str: &s.S3Region},
		{flag: "state-dir", env: "LATCHKEY_EDGE_STATE_DIR", usage: "persist the last trusted snapshot here (rollback protection across restarts)", str: &s.StateDir},
		{flag: "poll", env: "LATCHKEY_EDGE_POLL", usage: "manifest polling interval (default 1s)", dur: &s.Poll},
		{flag: "max-staleness", env: "LATCHKEY_EDGE_MAX_STALENESS", usage: "answer 503 once the snapshot is older than this (default 1h)", dur: &s.MaxStaleness},
		{flag: "recheck", env: "LATCHKEY_EDGE_RECHECK", usage: "decide open requests (SSE streams) again this often and after each snapshot, ending those no longer allowed (default 1s; negative: never)", dur: &s.Recheck},
		{flag: "wasm", env: "LATCHKEY_EDGE_WASM", usage: "decide with this verifier .wasm on wazero (default: the native core)", str: &s.Wasm},
		{flag: "compilation-cache-dir", env: "LATCHKEY_EDGE_COMPILATION_CACHE_DIR", usage: "wazero compilation cache (default under the user cache dir)", str: &s.CacheDir},
		{flag: "admin-prefix", env: "LATCHKEY_EDGE_ADMIN_PREFIX", usage: "serve /healthz and /metrics under this path prefix", str: &s.AdminPrefix},
		{flag: "log-level", env: "LATCHKEY_EDGE_LOG_LEVEL", usage: "debug, info, warn or error (default info)", str: &s.LogLevel},
	}
}

// stringList is a repeatable flag.
type stringList struct{ v *[]string }

func (l stringList) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}
func (l stringList) Set(s string) error { *l.v = append(*l.v, s); return nil }

// parse reads the file named by --config (or LATCHKEY_EDGE_CONFIG), then the environment,
// then the flags.
func parse(args []string, getenv func(string) string, stderr io.Writer) (*Settings, error) {
	fs := flag.NewFlagSet("latchkey-edge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("LATCHKEY_EDGE_CONFIG"), "YAML configuration file (env LATCHKEY_EDGE_CONFIG)")
	var fromFlags Settings
	for _, st := range fromFlags.table() {
		usage := st.usage + " (env " + st.env + ")"
		switch {
		case st.str != nil:
			fs.StringVar(st.str, st.flag, "", usage)
		case st.dur != nil:
			fs.DurationVar(st.dur, st.flag, 0, usage)
		default:
			fs.Var(stringList{st.list}, st.flag, usage)
		}
	}
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	s := &Settings{}
	if *configPath != "" {
		data, err := os.ReadFile(*configPath)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(s); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w", *configPath, err)
		}
	}
	mine, theirs := s.table(), fromFlags.table()
	for i, st := range mine {
		if v := getenv(st.env); v != "" {
			switch {
			case st.str != nil:
				*st.str = v
			case st.dur != nil:
				d, err := time.ParseDuration(v)
				if err != nil {
					return nil, usageError{fmt.Errorf("%s: %v", st.env, err)}
				}
				*st.dur = d
			default:
				*st.list = strings.Split(v, ",")
			}
		}
		if set[st.flag] {
			switch {
			case st.str != nil:
				*st.str = *theirs[i].str
			case st.dur != nil:
				*st.dur = *theirs[i].dur
			default:
				*st.list = *theirs[i].list
			}
		}
	}
	if s.Listen == "" {
		s.Listen = "127.0.0.1:8081"
	}
	if s.Realm == "" {
		s.Realm = "default"
	}
	return s, nil
}

// build turns settings into a proxy configuration, naming the setting at fault.
func build(ctx context.Context, s *Settings, logger *slog.Logger) (proxy.Config, error) {
	var cfg proxy.Config
	if s.Upstream == "" {
		return cfg, usageError{errors.New("upstream: required (--upstream http://127.0.0.1:9000)")}
	}
	u, err := url.Parse(s.Upstream)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfg, usageError{fmt.Errorf("upstream: %q is not an http(s) URL", s.Upstream)}
	}
	if len(s.TrustedKeys) == 0 {
		return cfg, usageError{errors.New("trusted-key: required: the control plane prints it at start (ed25519:…)")}
	}
	for _, k := range s.TrustedKeys {
		tk, err := signer.ParseTrustedKey(strings.TrimSpace(k))
		if err != nil {
			return cfg, usageError{fmt.Errorf("trusted-key %q: %v", k, err)}
		}
		cfg.Trusted = append(cfg.Trusted, tk)
	}
	var sources []string
	switch {
	case s.SnapshotDir != "":
		sources = append(sources, "snapshot-dir")
		cfg.Source = edgesync.DirSource{Root: s.SnapshotDir}
	}
	if s.SnapshotURL != "" {
		sources = append(sources, "snapshot-url")
		cfg.Source = edgesync.HTTPSource{Base: s.SnapshotURL}
	}
	if s.S3Bucket != "" {
		sources = append(sources, "s3-bucket")
		src, err := edgesync.NewS3Source(ctx, edgesync.S3Config{Bucket: s.S3Bucket, Prefix: s.S3Prefix, Endpoint: s.S3Endpoint,
			PathStyle: s.S3Endpoint != "", Region: s.S3Region})
		if err != nil {
			return cfg, err
		}
		cfg.Source = src
	}
	if len(sources) != 1 {
		return cfg, usageError{fmt.Errorf("snapshot source: give exactly one of snapshot-dir, snapshot-url, s3-bucket (got %d)", len(sources))}
	}
	if s.Wasm != "" {
		if cfg.Wasm, err = os.ReadFile(s.Wasm); err != nil {
			return cfg, fmt.Errorf("wasm: %w", err)
		}
	}
	cfg.Upstream, cfg.Realm, cfg.StateDir, cfg.Poll, cfg.MaxStaleness = u, s.Realm, s.StateDir, s.Poll, s.MaxStaleness
	cfg.Recheck = s.Recheck
	cfg.CompilationCacheDir, cfg.PathPrefix, cfg.Logger = s.CacheDir, strings.TrimSuffix(s.AdminPrefix, "/"), logger
	return cfg, nil
}

func logLevel(s string) (slog.Level, error) {
	var l slog.Level
	if s == "" {
		return slog.LevelInfo, nil
	}
	err := l.UnmarshalText([]byte(s))
	return l, err
}

// run starts the edge and serves until ctx ends. ready, when not nil, receives the listening
// address (for tests).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, ready chan<- string) error {
	s, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	lvl, err := logLevel(s.LogLevel)
	if err != nil {
		return usageError{fmt.Errorf("log-level: %v", err)}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	cfg, err := build(ctx, s, logger)
	if err != nil {
		return err
	}
	e, err := proxy.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer e.Close(context.WithoutCancel(ctx))
	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return err
	}
	mode := "native core"
	if s.Wasm != "" {
		mode = "wasm " + s.Wasm
	}
	fmt.Fprintf(stdout, "latchkey-edge: listening on http://%s, upstream %s, realm %s, deciding with the %s\n", ln.Addr(), s.Upstream, s.Realm, mode)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	srv := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second}
	syncDone := make(chan error, 1)
	go func() { syncDone <- e.Run(ctx) }()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
	case err := <-srvDone:
		return err
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-syncDone
	return err
}
