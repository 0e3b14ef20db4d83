// Package conformance is the one cross-host conformance suite: every profile's documented
// requests (examples/profiles/<name>.cases.yaml), sent through a host over its real interface,
// with the response and what reached the upstream compared with the case and, byte for byte,
// with the native core's decision. Each host's test calls Run, so that
//
//	go test -run Conformance -v ./...
//
// shows the whole matrix as TestConformance/<host>/<profile>/<case>.
//
// A host is anything that sits in front of an upstream: latchkey-edge (edge/proxy), the
// http-wasm guest, the proxy-wasm filter, the worker glue under Node and workerd. The
// suite sees it only through Exchange (what a client sends) and Response (what came back,
// and what the upstream received), so HTTP servers, proxytest and JS runtimes all fit.
package conformance

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles"
	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// Seed is the key-material seed of every fixture the suite builds: every host, in every
// package and language, is handed the same snapshot, keys and tokens.
const Seed = 1

// Fixture is a profile built once for every host, with what hosts derive from it.
type Fixture struct {
	*profiles.Built
	// Realm is the snapshot's realm.
	Realm string
	// State is the snapshot opened by the native core at Built.Now.
	State *verifier.State
	// Info describes the snapshot as a Wasm host sees it: the query credential parameter, the
	// request headers the policy reads, the identity headers to strip.
	Info abi.LoadResult
	// Identity names the identity headers the policy injects.
	Identity policy.Identity
}

var (
	fixturesMu sync.Mutex
	fixtures   = map[string]*Fixture{}
)

// Load returns the named profile's fixture, built once per test binary.
func Load(t testing.TB, name string) *Fixture {
	t.Helper()
	fixturesMu.Lock()
	defer fixturesMu.Unlock()
	if f, ok := fixtures[name]; ok {
		return f
	}
	b, err := profiles.Build(name, Seed)
	if err != nil {
		t.Fatal(err)
	}
	f := &Fixture{Built: b, Realm: b.Contents.Realm}
	ld := f.LoadAt(b.Now * 1e9)
	if f.State, err = ld.Open(nil, hostcrypto.Std); err != nil {
		t.Fatal(err)
	}
	abi.Describe(f.State, &f.Info)
	p, err := profiles.Policy(name)
	if err != nil {
		t.Fatal(err)
	}
	f.Identity = p.Identity
	fixtures[name] = f
	return f
}

// LoadAt is the fixture's snapshot as an abi.Load at now (Unix ns): what a Wasm guest is given.
func (f *Fixture) LoadAt(now int64) abi.Load {
	return abi.Load{Now: now, Trusted: []snapshot.TrustedKey{f.Trusted}, Manifest: f.Manifest, Objects: f.Objects}
}

// Files is the snapshot as the control plane publishes it (controlplane/publisher, read by
// edge/sync): "<realm>/manifest" and "<realm>/objects/<name>", names relative to a store's root.
func (f *Fixture) Files() (map[string][]byte, error) {
	m, err := snapshot.VerifyManifest(f.Manifest, []snapshot.TrustedKey{f.Trusted}, hostcrypto.Std)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{f.Realm + "/manifest": f.Manifest}
	for i, ref := range m.Objects {
		out[f.Realm+"/objects/"+ref.Name] = f.Objects[i]
	}
	return out, nil
}

// WriteDir writes Files under dir (a publisher.Dir target's layout).
func (f *Fixture) WriteDir(dir string) error {
	files, err := f.Files()
	if err != nil {
		return err
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves Files over HTTP (GET and HEAD, 404 for anything else): a snapshot store for
// hosts that fetch snapshots themselves (edge/sync's HTTPSource, the worker, the proxy-wasm
// filter's refresh).
func (f *Fixture) Handler() (http.Handler, error) {
	files, err := f.Files()
	if err != nil {
		return nil, err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(data)
	}), nil
}

// Exchange is one request as a client sends it.
type Exchange struct {
	Method string
	// Target is the request target: the case's path as sent (escaped), then, when the case
	// carries a query credential, "?a=1&<param>=<token>".
	Target string
	// Header holds the case's headers and a forged value of every identity header the
	// policy strips (a caller asserting an identity itself).
	Header http.Header
}

// Response is what a host did with an Exchange.
type Response struct {
	// Status, Header and Body are what the client received. For a forwarded request the
	// upstream answers 299 with an empty body.
	Status int
	Header http.Header
	Body   []byte
	// Upstream is the request the upstream received, nil when none reached it.
	Upstream *Upstream
	// Decision is the decision's encoding (abi.AppendDecision), for hosts that expose it (the
	// Go filter): it must equal the native core's byte for byte, and its reason and route
	// are checked against the case too. Nil for hosts seen only from outside.
	Decision []byte
}

// Upstream is a request as the upstream received it.
type Upstream struct {
	Header http.Header
	// Target is its request target (path and query, as received).
	Target string
}

// UpstreamStatus is the status the upstream answers every forwarded request with: a value
// no host produces itself, so a forwarded request cannot be mistaken for a local answer.
const UpstreamStatus = 299

// Host is one host under test.
type Host struct {
	// Name is the host's segment of the test name ("latchkey-edge", "proxywasm-tinygo", …).
	Name string
	// Open readies the host for a case of f and returns how to send it requests. It is called
	// once per case and must give the case fresh verifier state (an empty token cache, full
	// rate buckets): a case's outcome must not depend on the cases run before it. Hosts keep
	// expensive parts (compiled modules, processes) across calls themselves.
	Open func(t *testing.T, f *Fixture) func(t *testing.T, ex *Exchange) *Response
	// Serial runs the profiles one after another instead of in parallel.
	Serial bool
}

// Run runs every profile's cases on each host: TestConformance/<host>/<profile>/<case>.
func Run(t *testing.T, hosts ...Host) {
	for _, h := range hosts {
		t.Run(h.Name, func(t *testing.T) {
			for _, name := range profiles.Names() {
				f := Load(t, name)
				t.Run(name, func(t *testing.T) {
					if !h.Serial {
						t.Parallel()
					}
					for i := range f.Cases {
						c := &f.Cases[i]
						t.Run(c.Name, func(t *testing.T) {
							ex, ok := NewExchange(f, c)
							if !ok {
								t.Skipf("path %q does not survive URL parsing: no HTTP client can send it", c.Path)
							}
							do := h.Open(t, f)
							if err := Check(f, c, ex, do(t, ex)); err != nil {
								t.Fatal(err)
							}
						})
					}
				})
			}
		})
	}
}

// NewExchange is the request a client sends for case c; ok is false when the case's path
// cannot be sent over HTTP as written (it does not survive URL parsing).
func NewExchange(f *Fixture, c *profiles.Resolved) (ex *Exchange, ok bool) {
	u, err := url.Parse(c.Path)
	if err != nil || u.EscapedPath() != c.Path {
		return nil, false
	}
	ex = &Exchange{Method: c.Method, Target: c.Path, Header: http.Header{}}
	if c.QueryToken != "" {
		ex.Target += "?a=1&" + url.QueryEscape(f.queryParam()) + "=" + url.QueryEscape(c.QueryToken)
	}
	for _, h := range c.Headers {
		ex.Header.Add(h[0], h[1])
	}
	for _, name := range f.Info.Strip {
		ex.Header.Set(name, "forged")
	}
	return ex, true
}

func (f *Fixture) queryParam() string {
	if f.Info.QueryParam == "" {
		return "token"
	}
	return f.Info.QueryParam
}

// Native decides case c with the native core at the fixture's clock (a fresh engine): the
// reference every host is compared with, byte for byte.
func Native(f *Fixture, c *profiles.Resolved) *abi.Decision {
	e := verifier.NewEngine(verifier.Options{Crypto: hostcrypto.Std})
	e.SetState(f.State)
	req := &verifier.Request{Now: f.Now * 1e9, Method: []byte(c.Method), Path: []byte(c.Path)}
	if c.QueryToken != "" {
		req.QueryToken, req.HasQueryToken = []byte(c.QueryToken), true
	}
	for _, h := range c.Headers {
		req.Headers = append(req.Headers, verifier.Header{Name: []byte(strings.ToLower(h[0])), Value: []byte(h[1])})
	}
	var d abi.Decision
	d.Set(e.Decide(req))
	// Through the encoding and back: the decision no longer points into the engine.
	raw, err := abi.AppendDecision(nil, &d)
	if err != nil {
		panic(err)
	}
	var out abi.Decision
	if err := out.Decode(raw); err != nil {
		panic(err)
	}
	return &out
}

// Check compares what a host did with case c (sent as ex) with the case and the native core.
// Denials: status, every rendered header and the exact body, nothing forwarded. Allows:
// forwarded, the identity the upstream saw (from the policy's identity headers), forged
// identity headers replaced or removed, the query credential removed when the decision says
// so and the other query parameters kept.
func Check(f *Fixture, c *profiles.Resolved, ex *Exchange, got *Response) error {
	want := Native(f, c)
	var errs []string
	fail := func(msg string) { errs = append(errs, msg) }
	out := &profiles.Outcome{Status: got.Status}
	if got.Decision != nil {
		raw, err := abi.AppendDecision(nil, want)
		if err != nil {
			return err
		}
		var d abi.Decision
		if err := d.Decode(got.Decision); err != nil {
			fail("decision does not decode: " + err.Error())
		} else if !bytes.Equal(got.Decision, raw) {
			fail("decision differs from the native core's:\n got " + fmtDecision(&d) + "\nwant " + fmtDecision(want))
		}
		out.Reason, out.Route = policy.Reason(d.Reason).String(), string(d.Route)
		if d.Allow {
			out.Reason = ""
		}
	}
	if !want.Allow {
		if got.Upstream != nil {
			fail("denied request reached the upstream")
		}
		out.Body = got.Body
		out.Headers = map[string]string{}
		for k, vs := range got.Header {
			out.Headers[k] = vs[0]
		}
		if err := c.Check(out); err != nil {
			fail(err.Error())
		}
		if got.Status != int(want.Status) {
			fail("status " + itoa(got.Status) + ", native core " + itoa(int(want.Status)))
		}
		if ex.Method != http.MethodHead && !bytes.Equal(got.Body, want.Body) {
			fail("body " + quote(got.Body) + ", native core " + quote(want.Body))
		}
		if ex.Method == http.MethodHead && len(got.Body) != 0 {
			fail("HEAD answered with a body")
		}
		for _, h := range want.Headers {
			if vs := got.Header.Values(string(h.Name)); !contains(vs, string(h.Value)) {
				fail("header " + string(h.Name) + ": " + strings.Join(vs, ", ") + ", native core " + string(h.Value))
			}
		}
		if want.Status == http.StatusTooManyRequests && got.Header.Get("Retry-After") == "" {
			fail("429 without Retry-After")
		}
		return joined(errs)
	}
	seen := got.Upstream
	if seen == nil || got.Status != UpstreamStatus {
		return joined(append(errs, "allowed request not forwarded: status "+itoa(got.Status)+" "+quote(got.Body)))
	}
	out.Status = http.StatusOK
	out.Identity = map[string]string{}
	// Each identity field the policy injects is read from the header the upstream saw; a
	// field it injects no header for cannot cross HTTP and is taken from the native core.
	for field, x := range map[string]struct{ header, native string }{
		"org": {f.Identity.Org, string(want.Org)}, "key_id": {f.Identity.KeyID, string(want.KeyID)},
		"key_type": {f.Identity.KeyType, string(want.KeyType)}, "scopes": {f.Identity.Scopes, string(want.Scopes)},
		"agent": {f.Identity.Agent, string(want.Agent)}, "session": {f.Identity.Session, string(want.Session)},
		"credential": {f.Identity.Credential, verifier.Credential(want.Credential).String()},
	} {
		if x.header != "" {
			out.Identity[field] = seen.Header.Get(x.header)
		} else {
			out.Identity[field] = x.native
		}
	}
	if err := c.Check(out); err != nil {
		fail(err.Error())
	}
	wantIDs := map[string]string{}
	for _, h := range want.Identity {
		wantIDs[http.CanonicalHeaderKey(string(h.Name))] = string(h.Value)
	}
	for _, name := range f.Info.Strip {
		key := http.CanonicalHeaderKey(name)
		vs := seen.Header.Values(key)
		if w, ok := wantIDs[key]; ok {
			if len(vs) != 1 || vs[0] != w {
				fail("upstream identity header " + key + " = " + strings.Join(vs, ", ") + ", native core " + w)
			}
		} else if len(vs) != 0 {
			fail("forged identity header " + key + " reached the upstream: " + strings.Join(vs, ", "))
		}
	}
	for _, h := range c.Headers {
		if isStripped(f, h[0]) {
			continue
		}
		if vs := seen.Header.Values(h[0]); !contains(vs, h[1]) {
			fail("request header " + h[0] + " did not reach the upstream")
		}
	}
	if c.QueryToken != "" {
		u, err := url.ParseRequestURI(seen.Target)
		q := f.queryParam()
		switch {
		case err != nil:
			fail("upstream request target " + seen.Target + ": " + err.Error())
		case want.StripQueryToken && (u.Query().Has(q) || strings.Contains(u.RawQuery, q+"=")):
			fail("query credential forwarded: " + seen.Target)
		case !want.StripQueryToken && u.Query().Get(q) != c.QueryToken:
			fail("query credential lost although the decision keeps it: " + seen.Target)
		case u.Query().Get("a") != "1":
			fail("other query parameters lost: " + seen.Target)
		}
	}
	if u, err := url.ParseRequestURI(seen.Target); err == nil && u.EscapedPath() != c.Path {
		fail("upstream path " + u.EscapedPath() + ", sent " + c.Path)
	}
	return joined(errs)
}

func isStripped(f *Fixture, name string) bool {
	for _, s := range f.Info.Strip {
		if strings.EqualFold(s, name) {
			return true
		}
	}
	return false
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func itoa(n int) string     { return strconv.Itoa(n) }
func quote(b []byte) string { return strconv.Quote(string(b)) }
func joined(errs []string) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(errs, "; "))
}

func fmtDecision(d *abi.Decision) string {
	return "allow=" + strconv.FormatBool(d.Allow) + " status=" + itoa(int(d.Status)) + " reason=" + policy.Reason(d.Reason).String() +
		" route=" + strconv.Quote(string(d.Route)) + " cached=" + strconv.FormatBool(d.TokenCached) + " body=" + quote(d.Body)
}
