package api

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchParallelism is how many client goroutines per CPU drive a benchmark: a control plane
// serves many platform backends at once, and each request waits on the database's commit,
// so throughput comes from requests in flight together.
const benchParallelism = 32

// benchClient is a keep-alive client with room for every benchmark goroutine's connection.
func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute,
	}}
}

// runHTTP sends requests from parallel goroutines and reports how many succeeded per second,
// as unit ("tokens/s", "keys/s", "req/s").
func runHTTP(b *testing.B, c *http.Client, unit, method string, url func(i uint64) string, auth string, body []byte, want int) {
	var seq atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(method, url(seq.Add(1)), bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			res, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode != want {
				b.Errorf("status %d, want %d", res.StatusCode, want)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), unit)
}

// BenchmarkMintHTTP mints client tokens over real HTTP (loopback, keep-alive) with a realm
// API key, each for another session, on SQLite; the target is at least 10,000 tokens/s on
// two cores. The baseline is the same client against a bare handler answering a fixed token
// response: the cost of HTTP alone on this machine, in the same run.
func BenchmarkMintHTTP(b *testing.B) {
	e := newEnv(b, backends[0], withoutDoc())
	_, secret := e.realmKey(map[string]any{"type": "live", "scopes": []string{"read", "steer"}, "org": "acme"})
	ts := httptest.NewServer(e.srv.Handler())
	defer ts.Close()
	c := benchClient()
	body := []byte(`{"scopes":["read","steer"],"ttl":600}`)
	url := func(i uint64) string {
		return ts.URL + "/v1/sessions/sess-" + strconv.FormatUint(i, 10) + "/client-tokens"
	}
	b.Run("mint", func(b *testing.B) {
		runHTTP(b, c, "tokens/s", "POST", url, bearer(secret), body, http.StatusCreated)
	})
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		writeJSON(w, http.StatusCreated, mintResponse{Token: "eyJ.eyJ.sig", ExpiresAt: time.Now(), JTI: "tok_x", KID: "sk_x"})
	}))
	defer bare.Close()
	b.Run("baseline=bare-http", func(b *testing.B) {
		runHTTP(b, c, "req/s", "POST", func(uint64) string { return bare.URL + "/" }, bearer(secret), body, http.StatusCreated)
	})
}

// BenchmarkCreateKeyHTTP creates API keys over real HTTP with an admin key, on each backend:
// each creation is a committed write (and an audit append).
func BenchmarkCreateKeyHTTP(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			e := newEnv(b, be, withoutDoc())
			ts := httptest.NewServer(e.srv.Handler())
			defer ts.Close()
			runHTTP(b, benchClient(), "keys/s", "POST", func(uint64) string { return ts.URL + "/v1/keys" }, bearer(e.admin),
				[]byte(`{"type":"live","name":"bench","scopes":["read"],"org":"acme"}`), http.StatusCreated)
		})
	}
}
