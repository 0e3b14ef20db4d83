//go:build !wasip1

package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
)

// filter is one plugin of a compiled guest, hosted by proxytest's emulator (the closest thing
// to Envoy that runs here): a fresh plugin context, so a fresh engine, on a shared VM.
type filter struct {
	host proxytest.HostEmulator
	// answered counts the plugin's HTTP calls answered so far.
	answered int
	close    func()
}

// startFilter starts a plugin with the configuration text cfg on the named build. The
// emulator is process-wide (its host functions are package state, behind a lock): one filter
// at a time, closed (at the latest by the test's cleanup) before the next starts, and tests
// using it do not run in parallel.
func startFilter(t testing.TB, build string, cfg []byte) *filter {
	t.Helper()
	return startFilterOn(t, guestVM(t, build), cfg)
}

// startFilterOn starts a plugin on vm.
func startFilterOn(t testing.TB, vm types.VMContext, cfg []byte) *filter {
	t.Helper()
	host, reset := proxytest.NewHostEmulator(proxytest.NewEmulatorOption().WithVMContext(vm).WithPluginConfiguration(cfg))
	f := &filter{host: host, close: sync.OnceFunc(reset)}
	t.Cleanup(f.close)
	if host.StartPlugin() != types.OnPluginStartStatusOK {
		t.Fatal("plugin start refused")
	}
	return f
}

// send sends ex through the filter's request-headers callback and reports what a client and
// the upstream would have seen.
func (f *filter) send(t testing.TB, ex *conformance.Exchange) *conformance.Response {
	t.Helper()
	id := f.host.InitializeHttpContext()
	defer f.host.CompleteHttpContext(id)
	hs := [][2]string{{":method", ex.Method}, {":path", ex.Target}, {":authority", "api.example.test"}, {":scheme", "https"}}
	names := make([]string, 0, len(ex.Header))
	for name := range ex.Header {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, v := range ex.Header[name] {
			// Envoy hands filters lower-case header names.
			hs = append(hs, [2]string{strings.ToLower(name), v})
		}
	}
	action := f.host.CallOnRequestHeaders(id, hs, true)
	if lr := f.host.GetSentLocalResponse(id); lr != nil {
		if action != types.ActionPause {
			t.Fatalf("local response %d sent, but the filter returned action %d, not Pause", lr.StatusCode, action)
		}
		// The emulator's records point into guest memory: copy them before the guest runs
		// again.
		resp := &conformance.Response{Status: int(lr.StatusCode), Header: http.Header{}}
		for _, h := range lr.Headers {
			resp.Header.Add(strings.Clone(h[0]), strings.Clone(h[1]))
		}
		// Envoy sends the local reply to a HEAD request without its body; the emulator keeps
		// it, so drop it here.
		if ex.Method != http.MethodHead {
			resp.Body = bytes.Clone(lr.Data)
		}
		return resp
	}
	if action != types.ActionContinue {
		t.Fatalf("the filter neither answered nor continued the request (action %d)", action)
	}
	up := &conformance.Upstream{Header: http.Header{}}
	for _, h := range f.host.GetCurrentRequestHeaders(id) {
		switch {
		case h[0] == ":path":
			up.Target = strings.Clone(h[1])
		case !strings.HasPrefix(h[0], ":"):
			up.Header.Add(strings.Clone(h[0]), strings.Clone(h[1]))
		}
	}
	return &conformance.Response{Status: conformance.UpstreamStatus, Header: http.Header{}, Upstream: up}
}

// get sends GET path with one header (name "" for none) and returns the status.
func (f *filter) get(t testing.TB, path, name, value string) *conformance.Response {
	t.Helper()
	ex := &conformance.Exchange{Method: http.MethodGet, Target: path, Header: http.Header{}}
	if name != "" {
		ex.Header.Set(name, value)
	}
	return f.send(t, ex)
}

// serve answers the plugin's pending HTTP calls until it makes no more, sending each over real
// HTTP to the server clusters names (cluster name → base URL); a call to a cluster not in
// clusters gets no answer, as Envoy reports a failed call. It returns the calls answered.
func (f *filter) serve(t testing.TB, clusters map[string]string) []proxytest.HttpCalloutAttribute {
	t.Helper()
	var done []proxytest.HttpCalloutAttribute
	for {
		calls := f.host.GetCalloutAttributesFromContext(proxytest.PluginContextID)
		if f.answered >= len(calls) {
			return done
		}
		c := cloneCall(calls[f.answered])
		f.answered++
		done = append(done, c)
		base, ok := clusters[c.Upstream]
		if !ok {
			f.host.CallOnHttpCallResponse(c.CalloutID, nil, nil, nil)
			continue
		}
		status, headers, body := forward(t, base, c.Headers)
		f.host.CallOnHttpCallResponse(c.CalloutID, append([][2]string{{":status", strconv.Itoa(status)}}, headers...), nil, body)
	}
}

// cloneCall copies a call's record, which points into guest memory (the emulator keeps views
// of the bytes the guest passed): the guest reuses that memory once it runs again.
func cloneCall(c proxytest.HttpCalloutAttribute) proxytest.HttpCalloutAttribute {
	hs := make([][2]string, len(c.Headers))
	for i, h := range c.Headers {
		hs[i] = [2]string{strings.Clone(h[0]), strings.Clone(h[1])}
	}
	c.Headers, c.Trailers, c.Body = hs, nil, bytes.Clone(c.Body)
	return c
}

// forward sends an HTTP call's request (pseudo-headers and headers) to base.
func forward(t testing.TB, base string, headers [][2]string) (int, [][2]string, []byte) {
	t.Helper()
	var method, path, authority string
	h := http.Header{}
	for _, kv := range headers {
		switch kv[0] {
		case ":method":
			method = kv[1]
		case ":path":
			path = kv[1]
		case ":authority":
			authority = kv[1]
		default:
			h.Add(kv[0], kv[1])
		}
	}
	if method == "" || path == "" || authority == "" {
		// Envoy refuses such a call (dispatch_http_call needs all three).
		t.Fatalf("HTTP call without :method, :path or :authority: %q", headers)
	}
	req, err := http.NewRequest(method, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header, req.Host = h, authority
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	for name, vs := range resp.Header {
		for _, v := range vs {
			out = append(out, [2]string{strings.ToLower(name), v})
		}
	}
	return resp.StatusCode, out, body
}

func (f *filter) errorLogs() string { return strings.Join(f.host.GetErrorLogs(), "\n") }

func (f *filter) logs() string {
	var all []string
	for _, l := range [][]string{f.host.GetInfoLogs(), f.host.GetWarnLogs(), f.host.GetErrorLogs()} {
		all = append(all, l...)
	}
	return strings.Join(all, "\n")
}

// store is a snapshot store: a directory in the publisher's layout (<realm>/manifest,
// <realm>/objects/<name>) served over HTTP under a path prefix, with strong ETags and
// If-None-Match (http.ServeContent), as an object store or a CDN in front of one serves it.
type store struct {
	dir string
	srv *httptest.Server
	mu  sync.Mutex
	// gets counts GET requests by path.
	gets map[string]int
}

func newStore(t testing.TB, prefix string) *store {
	t.Helper()
	s := &store{dir: t.TempDir(), gets: map[string]int{}}
	s.srv = httptest.NewServer(http.StripPrefix(prefix, s))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.gets[r.URL.Path]++
	s.mu.Unlock()
	name := filepath.Clean("/" + r.URL.Path)
	data, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(name)))
	if err != nil || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	sum := sha256.Sum256(data)
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum[:8])+`"`)
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
}

// publish writes b's snapshot in the publisher's layout.
func (s *store) publish(t testing.TB, b *profiles.Built) {
	t.Helper()
	f := &conformance.Fixture{Built: b, Realm: b.Contents.Realm}
	if err := f.WriteDir(s.dir); err != nil {
		t.Fatal(err)
	}
}

// write replaces one file of the store.
func (s *store) write(t testing.TB, name string, data []byte) {
	t.Helper()
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *store) hits(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets[path]
}

// fixedConfig is b's snapshot as the filter's configuration, the clock fixed at b.Now (a
// latchkey_fixedclock build honours it); edit adjusts it before it is written.
func fixedConfig(b *profiles.Built, edit func(*config.Config)) []byte {
	c := &config.Config{
		ManifestKeys: []snapshot.TrustedKey{b.Trusted},
		Snapshot:     &config.Snapshot{Manifest: b.Manifest, Objects: b.Objects},
		NowOverride:  b.Now * 1e9,
	}
	if edit != nil {
		edit(c)
	}
	return config.Marshal(c)
}
