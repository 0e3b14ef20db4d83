package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/latchkeyhq/latchkey/controlplane/publisher"
	"github.com/latchkeyhq/latchkey/controlplane/store"
)

// metrics are the API's Prometheus metrics (API.md, "Metrics").
type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	keys         *prometheus.GaugeVec
	publishTotal *prometheus.CounterVec
	mintedTotal  *prometheus.CounterVec
	handler      http.Handler

	// counted remembers, per realm, the snapshot version the key gauge was computed for.
	mu      sync.Mutex
	counted map[string]uint64
}

func newMetrics(reg *prometheus.Registry, s *Server) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "latchkey", Name: "http_requests_total",
			Help: "HTTP requests served by the control-plane API, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "latchkey", Name: "http_request_duration_seconds",
			Help:    "Time to serve a control-plane API request, by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route"}),
		keys: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "latchkey", Name: "keys",
			Help: "Non-admin API keys per realm, active or revoked; refreshed when a snapshot is published.",
		}, []string{"realm", "state"}),
		publishTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "latchkey", Name: "snapshot_publish_total",
			Help: "Snapshot publications requested through the API (POST /v1/snapshots/publish), by kind and result.",
		}, []string{"realm", "kind", "result"}),
		mintedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "latchkey", Name: "client_tokens_minted_total",
			Help: "Client tokens minted, per realm.",
		}, []string{"realm"}),
		counted: map[string]uint64{},
	}
	snap := &snapshotCollector{
		s: s, m: m,
		version: prometheus.NewDesc("latchkey_snapshot_version",
			"Version of the realm's last published snapshot.", []string{"realm"}, nil),
		lag: prometheus.NewDesc("latchkey_snapshot_publish_lag_seconds",
			"Time from a change to its snapshot's manifest being written, last publication.", []string{"realm"}, nil),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.keys, m.publishTotal, m.mintedTotal, snap} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return m, nil
}

func (m *metrics) observe(route, method string, code int, start time.Time) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

func (m *metrics) minted(realm string) { m.mintedTotal.WithLabelValues(realm).Inc() }

func (m *metrics) published(realm string, st publisher.Status, err error) {
	kind, result := "delta", "ok"
	if st.Full {
		kind = "full"
	}
	if err != nil {
		result = "error"
	}
	m.publishTotal.WithLabelValues(realm, kind, result).Inc()
}

// refreshKeyGauge recounts a realm's keys for latchkey_keys.
func (s *Server) refreshKeyGauge(ctx context.Context, realm string) {
	no := false
	now := s.now()
	active, err := s.st.CountKeys(ctx, realm, store.KeyFilter{Now: now, Admin: &no})
	if err != nil {
		return
	}
	all, err := s.st.CountKeys(ctx, realm, store.KeyFilter{Now: now, Admin: &no, IncludeRevoked: true})
	if err != nil {
		return
	}
	s.metrics.keys.WithLabelValues(realm, "active").Set(float64(active))
	s.metrics.keys.WithLabelValues(realm, "revoked").Set(float64(all - active))
}

// snapshotCollector reads the publisher's status at scrape time, so the snapshot gauges
// follow publications the publisher makes on its own (after Notify, on its interval) and not
// only those requested through the API. When a realm's published version has moved since the
// key gauge was computed, the keys are counted again: "refreshed on publish", lazily.
type snapshotCollector struct {
	s            *Server
	m            *metrics
	version, lag *prometheus.Desc
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.version
	ch <- c.lag
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.s.realms.state(ctx, c.s)
	if err != nil {
		return
	}
	for _, ri := range st.list {
		name := ri.realm.Name
		ps := c.s.pub.Status(name)
		ch <- prometheus.MustNewConstMetric(c.version, prometheus.GaugeValue, float64(ps.Version), name)
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, ps.Lag.Seconds(), name)
		c.m.mu.Lock()
		stale := c.m.counted[name] != ps.Version || ps.Version == 0
		c.m.counted[name] = ps.Version
		c.m.mu.Unlock()
		if stale {
			c.s.refreshKeyGauge(ctx, name)
		}
	}
}
