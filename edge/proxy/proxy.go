// Package proxy is latchkey-edge: a reverse proxy that decides every request with the filter
// (native core or the Wasm verifier on wazero) from snapshots the syncer keeps fresh, and
// forwards what is allowed to one upstream. It serves /healthz and /metrics beside the proxied
// routes; `latchkey-edge` and `latchkey dev` both run it.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/latchkeyhq/latchkey/edge/filter"
	edgesync "github.com/latchkeyhq/latchkey/edge/sync"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
)

// Config configures an Edge.
type Config struct {
	// Upstream receives allowed requests.
	Upstream *url.URL
	// Realm, Trusted and Source say which snapshots to follow and whom to believe.
	Realm   string
	Trusted []snapshot.TrustedKey
	Source  edgesync.Source
	// StateDir persists the last trusted snapshot (rollback protection across restarts,
	// serving while the store is down after a restart). Empty: memory only.
	StateDir string
	// Poll is the manifest polling interval (default 1 s).
	Poll time.Duration
	// MaxStaleness fails requests closed (503) once the snapshot held was issued longer ago
	// (default 1 h; the control plane republishes every minute).
	MaxStaleness time.Duration
	// Recheck is how often requests still being served (SSE streams, long polls) are decided
	// again, besides after each new snapshot; those no longer allowed (revoked, expired) are
	// ended. 0: filter.DefaultRecheckInterval (1 s); negative: never.
	Recheck time.Duration
	// Wasm, when set, decides with this verifier module on wazero instead of the native core.
	Wasm []byte
	// CompilationCacheDir for wazero (default under the user cache dir).
	CompilationCacheDir string
	// PathPrefix, when set, is where /healthz and /metrics live instead of the root (so they
	// cannot shadow an upstream route of the same name).
	PathPrefix string
	Now        func() time.Time
	Logger     *slog.Logger
}

// Edge is a running edge: syncer, filter, reverse proxy and its metrics.
type Edge struct {
	cfg     Config
	Syncer  *edgesync.Syncer
	Filter  *filter.Filter
	reg     *prometheus.Registry
	handler http.Handler

	decisions *prometheus.CounterVec
	loads     *prometheus.CounterVec
	tokens    *prometheus.CounterVec
	cuts      *prometheus.CounterVec
}

// New assembles an Edge; Run starts polling. Until the first snapshot loads every proxied
// request is answered 503.
func New(ctx context.Context, cfg Config) (*Edge, error) {
	if cfg.Upstream == nil || cfg.Upstream.Scheme == "" || cfg.Upstream.Host == "" {
		return nil, errors.New("proxy: upstream must be an absolute URL (http://host:port)")
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.MaxStaleness == 0 {
		cfg.MaxStaleness = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Edge{cfg: cfg, reg: prometheus.NewRegistry()}
	e.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_edge_decisions_total", Help: "Decisions by outcome (allow, deny) and reason.",
	}, []string{"outcome", "reason", "status"})
	e.loads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_edge_snapshot_loads_total", Help: "Snapshots offered to the filter, by result.",
	}, []string{"result"})
	e.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_edge_token_decisions_total",
		Help: "Allowed client-token requests, by whether the verified-token cache answered (hit) or a signature was checked (miss).",
	}, []string{"cache"})
	e.cuts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "latchkey_edge_requests_cut_total",
		Help: "Open requests (SSE streams, long polls) ended because a recheck no longer allowed them, by reason.",
	}, []string{"reason", "status"})
	e.reg.MustRegister(e.decisions, e.loads, e.tokens, e.cuts)

	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(cfg.Upstream)
			pr.SetXForwarded()
		},
		// SSE streams must reach the browser as they are written.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cfg.Logger.Warn("edge: upstream error", "err", err, "path", r.URL.Path)
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
		},
	}
	fc := filter.NewConfig(cfg.Trusted...).WithMaxStaleness(cfg.MaxStaleness).WithClock(cfg.Now).
		WithObserver(e.observe).WithRecheckInterval(cfg.Recheck).WithCutObserver(e.cut)
	if cfg.Wasm != nil {
		fc = fc.WithWasm(cfg.Wasm)
		if cfg.CompilationCacheDir != "" {
			fc = fc.WithCompilationCacheDir(cfg.CompilationCacheDir)
		}
	}
	f, err := filter.New(ctx, rp, fc)
	if err != nil {
		return nil, err
	}
	e.Filter = f
	e.Syncer, err = edgesync.New(edgesync.Config{
		Source: cfg.Source, Realm: cfg.Realm, Trusted: cfg.Trusted, StateDir: cfg.StateDir,
		Interval: cfg.Poll, Now: cfg.Now, Logger: cfg.Logger, OnSwap: e.load,
	})
	if err != nil {
		f.Close(ctx)
		return nil, err
	}
	e.registerGauges()

	e.handler = e.route(f, promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}))
	return e, nil
}

// route serves GET <prefix>/healthz and <prefix>/metrics itself and everything else through
// the filter. Not an http.ServeMux: it answers a path holding dot segments or double slashes
// with a redirect to the cleaned path, so such a request would never reach the filter, whose
// policy decides it (profiles refuse dot segments with their documented 403).
func (e *Edge) route(f http.Handler, metrics http.Handler) http.Handler {
	health, metricsPath := e.cfg.PathPrefix+"/healthz", e.cfg.PathPrefix+"/metrics"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			switch r.URL.Path {
			case health:
				e.healthz(w, r)
				return
			case metricsPath:
				metrics.ServeHTTP(w, r)
				return
			}
		}
		f.ServeHTTP(w, r)
	})
}

// load hands a verified snapshot to the filter (which verifies it again, inside the guest
// when it is Wasm: the guest trusts no host).
func (e *Edge) load(s *edgesync.Snapshot) {
	if _, err := e.Filter.SetSnapshot(s.Manifest, s.Objects, s.Delta); err != nil {
		e.loads.WithLabelValues("refused").Inc()
		e.cfg.Logger.Error("edge: filter refused a snapshot the syncer accepted", "version", s.M.Version, "err", err)
		return
	}
	e.loads.WithLabelValues("loaded").Inc()
	e.cfg.Logger.Info("edge: snapshot loaded", "realm", s.M.Realm, "version", s.M.Version, "delta", s.M.Delta != nil)
}

func (e *Edge) observe(res *filter.Result) {
	outcome := "deny"
	if res.Allow {
		outcome = "allow"
	}
	e.decisions.WithLabelValues(outcome, res.Reason(), strconv.Itoa(res.Status)).Inc()
	if res.Allow && verifier.Credential(res.Credential) == verifier.CredentialToken {
		if res.TokenCached {
			e.tokens.WithLabelValues("hit").Inc()
		} else {
			e.tokens.WithLabelValues("miss").Inc()
		}
	}
}

func (e *Edge) cut(res *filter.Result) {
	e.cuts.WithLabelValues(res.Reason(), strconv.Itoa(res.Status)).Inc()
	e.cfg.Logger.Info("edge: open request ended", "reason", res.Reason(), "status", res.Status)
}

func (e *Edge) registerGauges() {
	e.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "latchkey_edge_open_requests", Help: "Allowed requests being served now (rechecked after each snapshot)."},
			func() float64 { return float64(e.Filter.Open()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "latchkey_edge_snapshot_version", Help: "Version of the snapshot in use (0: none)."},
			func() float64 { return float64(e.Syncer.Status().Version) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "latchkey_edge_snapshot_age_seconds", Help: "Seconds since the snapshot in use was issued (-1: none)."},
			func() float64 {
				st := e.Syncer.Status()
				if st.Version == 0 {
					return -1
				}
				return e.cfg.Now().Sub(st.IssuedAt).Seconds()
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "latchkey_edge_sync_failures", Help: "Consecutive failed manifest polls."},
			func() float64 { return float64(e.Syncer.Status().Failures) }),
	)
}

// Health is what /healthz reports.
type Health struct {
	Status    string `json:"status"` // "ok", or "unavailable" (no snapshot, or too old)
	Realm     string `json:"realm"`
	Version   uint64 `json:"snapshot_version"`
	AgeSec    int64  `json:"snapshot_age_seconds"`
	LastError string `json:"last_sync_error,omitempty"`
	Failures  int    `json:"sync_failures"`
}

// Health reports whether the edge can decide requests now.
func (e *Edge) Health() Health {
	st := e.Syncer.Status()
	h := Health{Status: "ok", Realm: e.cfg.Realm, Version: st.Version, LastError: st.LastError, Failures: st.Failures}
	if st.Version == 0 {
		h.Status, h.AgeSec = "unavailable", -1
		return h
	}
	h.AgeSec = int64(e.cfg.Now().Sub(st.IssuedAt).Seconds())
	if e.cur() == nil || e.cfg.Now().Sub(st.IssuedAt) > e.cfg.MaxStaleness || !e.cfg.Now().Before(time.Unix(e.cur().M.ExpiresAt, 0)) {
		h.Status = "unavailable"
	}
	return h
}

func (e *Edge) cur() *edgesync.Snapshot { return e.Syncer.Current() }

func (e *Edge) healthz(w http.ResponseWriter, _ *http.Request) {
	h := e.Health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	writeHealth(w, h)
}

// Handler serves the proxied routes, /healthz and /metrics.
func (e *Edge) Handler() http.Handler { return e.handler }

// Registry holds the edge's metrics.
func (e *Edge) Registry() *prometheus.Registry { return e.reg }

// Run polls snapshots until ctx ends.
func (e *Edge) Run(ctx context.Context) error { return e.Syncer.Run(ctx) }

// Close releases the filter's decider.
func (e *Edge) Close(ctx context.Context) error { return e.Filter.Close(ctx) }
