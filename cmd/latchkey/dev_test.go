package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

// startDev runs `latchkey dev` in-process on free loopback ports: control plane, edge and demo
// upstream over real sockets, exactly as a user starts it.
func startDev(t testing.TB, extra ...string) *devSetup {
	t.Helper()
	return startDevOutput(t, append([]string{"--quiet"}, extra...)...).setup
}

// devRunning is a `latchkey dev` started by startDevOutput, with what it printed and logged.
type devRunning struct {
	setup          *devSetup
	stdout, stderr *syncBuffer
}

// startDevOutput is startDev without --quiet implied, keeping the banner and the log.
func startDevOutput(t testing.TB, extra ...string) *devRunning {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	e := &env{getenv: envOf(nil), stdout: out, stderr: errOut}
	ready := make(chan *devSetup, 1)
	done := make(chan error, 1)
	args := append([]string{"--addr", "127.0.0.1:0", "--edge-addr", "127.0.0.1:0"}, extra...)
	go func() { done <- e.devRun(ctx, args, ready) }()
	var s *devSetup
	select {
	case s = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("latchkey dev exited: %v\n%s", err, errOut.String())
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("latchkey dev did not start\n%s", errOut.String())
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("latchkey dev: %v", err)
		}
	})
	if s.AdminKey != "" && (!strings.Contains(out.String(), s.SampleKey) || !strings.Contains(out.String(), "curl")) {
		t.Fatalf("banner lacks the sample key or the curl lines:\n%s", out.String())
	}
	return &devRunning{setup: s, stdout: out, stderr: errOut}
}

type reply struct {
	status int
	body   []byte
	header http.Header
}

func call(t testing.TB, method, url, bearer string, body any) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b, resp.Header}
}

func mint(t testing.TB, s *devSetup, key, session string, scopes []string) string {
	t.Helper()
	r := call(t, "POST", s.ControlPlane+"/v1/sessions/"+session+"/client-tokens", key, map[string]any{"scopes": scopes, "ttl": 300})
	if r.status != 201 {
		t.Fatalf("mint: %d %s", r.status, r.body)
	}
	var out struct{ Token string }
	json.Unmarshal(r.body, &out)
	return out.Token
}

// firstEvent opens the SSE stream and returns the first event's data, or the status when the
// edge refuses.
func firstEvent(t testing.TB, url string) (int, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return resp.StatusCode, nil
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var ev map[string]any
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatal(err)
			}
			return 200, ev
		}
	}
	t.Fatalf("SSE stream ended without an event: %v", sc.Err())
	return 0, nil
}

// eventually polls until check holds (the edge polls snapshots every second).
func eventually(t testing.TB, what string, check func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		if check() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within 15 s", what)
	return 0
}

// TestEndToEnd drives latchkey over real sockets as a platform would: keys through the
// control plane's API, requests through the edge to the upstream, revocation and signing-key
// rotation propagated by snapshots.
func TestEndToEnd(t *testing.T) {
	s := startDev(t)

	// A key works through the edge, and the upstream sees who called.
	r := call(t, "GET", s.Edge+"/hello", s.SampleKey, nil)
	if r.status != 200 {
		t.Fatalf("sample key through the edge: %d %s", r.status, r.body)
	}
	var up struct{ Identity map[string]string }
	json.Unmarshal(r.body, &up)
	if up.Identity["org"] != "acme" || up.Identity["key-id"] != s.SampleKeyID || up.Identity["credential"] != "key" {
		t.Fatalf("upstream saw identity %v", up.Identity)
	}
	if r := call(t, "GET", s.Edge+"/hello", "", nil); r.status != 401 {
		t.Fatalf("no key: %d", r.status)
	}
	if r := call(t, "POST", s.Edge+"/sessions/s1/messages", s.ReadOnlyKey, map[string]string{"text": "hi"}); r.status != 403 {
		t.Fatalf("read-only key steering: %d %s", r.status, r.body)
	}
	// A caller cannot assert an identity itself.
	req, _ := http.NewRequest("GET", s.Edge+"/hello", nil)
	req.Header.Set("Authorization", "Bearer "+s.SampleKey)
	req.Header.Set("X-Latchkey-Org", "evil")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(body, []byte(`"org": "acme"`)) || bytes.Contains(body, []byte("evil")) {
		t.Fatalf("spoofed identity header reached the upstream: %s", body)
	}

	// A client token streams its own session with ?token=, which the upstream never sees.
	tok := mint(t, s, s.SampleKey, "s1", []string{"read", "steer"})
	status, ev := firstEvent(t, s.Edge+"/sessions/s1/events?token="+tok+"&since=0")
	if status != 200 || ev["query_seen_by_upstream"] != "since=0" || ev["session"] != "s1" {
		t.Fatalf("SSE with a token: %d %v", status, ev)
	}
	if status, _ := firstEvent(t, s.Edge+"/sessions/s2/events?token="+tok); status != 403 {
		t.Fatalf("token of s1 on session s2: %d, want 403", status)
	}
	if r := call(t, "POST", s.Edge+"/sessions/s1/messages", tok, map[string]string{"text": "steer"}); r.status != 200 {
		t.Fatalf("steer with the token as bearer: %d %s", r.status, r.body)
	}

	// Rotating the signing key keeps earlier tokens valid until they expire.
	if r := call(t, "POST", s.ControlPlane+"/v1/signing-keys/rotate", s.AdminKey, map[string]string{}); r.status != 200 {
		t.Fatalf("rotate signing key: %d %s", r.status, r.body)
	}
	fresh := mint(t, s, s.SampleKey, "s1", []string{"read"})
	eventually(t, "a token of the new signing key accepted", func() bool {
		st, _ := firstEvent(t, s.Edge+"/sessions/s1/events?token="+fresh)
		return st == 200
	})
	if status, _ := firstEvent(t, s.Edge+"/sessions/s1/events?token="+tok); status != 200 {
		t.Fatalf("token of the retired signing key after rotation: %d, want 200 until it expires", status)
	}

	// Revoking the session kills its tokens; revoking the key kills the key and its tokens.
	if r := call(t, "DELETE", s.ControlPlane+"/v1/sessions/s1/client-tokens", s.AdminKey, nil); r.status != 204 {
		t.Fatalf("revoke session: %d %s", r.status, r.body)
	}
	eventually(t, "revoked session refused", func() bool {
		st, _ := firstEvent(t, s.Edge+"/sessions/s1/events?token="+tok)
		return st == 401
	})
	if r := call(t, "POST", s.ControlPlane+"/v1/keys/"+s.SampleKeyID+"/revoke", s.AdminKey, nil); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	took := eventually(t, "revoked key refused", func() bool {
		return call(t, "GET", s.Edge+"/hello", s.SampleKey, nil).status == 401
	})
	t.Logf("revocation reached the edge in %v", took)
	if r := call(t, "GET", s.Edge+"/_latchkey/healthz", "", nil); r.status != 200 {
		t.Fatalf("edge health: %d %s", r.status, r.body)
	}
	m := call(t, "GET", s.Edge+"/_latchkey/metrics", "", nil)
	for _, want := range []string{`latchkey_edge_decisions_total{outcome="allow"`, `latchkey_edge_snapshot_version`, `latchkey_edge_token_decisions_total{cache=`} {
		if !bytes.Contains(m.body, []byte(want)) {
			t.Errorf("edge metrics lack %s", want)
		}
	}
}

// BenchmarkRevocationPropagation measures API call → edge denies, with the edge polling the
// snapshot directory every second, over real sockets. Run with -benchtime=1x: each run revokes
// 20 keys and reports p50 and p99 in milliseconds.
func BenchmarkRevocationPropagation(b *testing.B) {
	if os.Getenv("LATCHKEY_BENCH_REVOCATION") == "" && testing.Short() {
		b.Skip("slow")
	}
	s := startDev(b)
	const n = 20
	for i := 0; i < b.N; i++ {
		var keys []struct{ secret, id string }
		for j := 0; j < n; j++ {
			r := call(b, "POST", s.ControlPlane+"/v1/keys", s.AdminKey, map[string]any{"type": "live", "org": "acme", "name": "bench"})
			var out struct {
				Key    struct{ ID string }
				Secret string
			}
			json.Unmarshal(r.body, &out)
			keys = append(keys, struct{ secret, id string }{out.Secret, out.Key.ID})
		}
		eventually(b, "new keys allowed", func() bool {
			return call(b, "GET", s.Edge+"/hello", keys[n-1].secret, nil).status == 200
		})
		var took []time.Duration
		for _, k := range keys {
			// Start at a random phase of the edge's poll, as a real revocation would.
			time.Sleep(time.Duration(len(took)*53%1000) * time.Millisecond)
			start := time.Now()
			call(b, "POST", s.ControlPlane+"/v1/keys/"+k.id+"/revoke", s.AdminKey, nil)
			for call(b, "GET", s.Edge+"/hello", k.secret, nil).status != 401 {
				time.Sleep(5 * time.Millisecond)
			}
			took = append(took, time.Since(start))
		}
		sort.Slice(took, func(a, c int) bool { return took[a] < took[c] })
		b.ReportMetric(float64(took[n/2].Milliseconds()), "p50-ms")
		b.ReportMetric(float64(took[n*99/100].Milliseconds()), "p99-ms")
		b.ReportMetric(float64(took[n-1].Milliseconds()), "max-ms")
	}
}
