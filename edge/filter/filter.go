// Package filter is latchkey's net/http middleware: it decides every request offline from
// the newest signed snapshot it was given, forwards allowed requests with the caller's
// identity headers (incoming copies removed, a query token stripped where the policy says),
// and answers denials with the realm's rendered status, headers and body.
//
// Decisions come from a Decider: the verification core compiled into the process (native),
// or the latchkey verifier Wasm module (wasm/verifier) hosted by wazero, compiled once (with
// an on-disk compilation cache), checked at start, and run from a pool of instances. Both
// give the same decision for the same snapshot, request and clock.
package filter

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// Filter is the middleware. It is safe for concurrent use.
type Filter struct {
	next    http.Handler
	decider Decider
	now     func() time.Time
	observe func(*Result)
	scratch sync.Pool
	// open tracks allowed requests still being served, for rechecks; nil: none are made.
	open  *open
	onCut func(*Result)
}

type scratch struct {
	in  Input
	res Result
}

// NewDecider returns the Decider cfg describes: the native core, or the Wasm module given
// with Config.WithWasm. A Wasm decider compiles and checks the module and instantiates one
// instance before it returns.
func NewDecider(ctx context.Context, cfg Config) (Decider, error) {
	if cfg.wasm == nil {
		return newNative(cfg), nil
	}
	return newWasm(ctx, cfg)
}

// New returns a Filter in front of next. Until the first SetSnapshot it answers 503.
func New(ctx context.Context, next http.Handler, cfg Config) (*Filter, error) {
	d, err := NewDecider(ctx, cfg)
	if err != nil {
		return nil, err
	}
	f := &Filter{next: next, decider: d, now: cfg.clock(), observe: cfg.observe, onCut: cfg.onCut}
	if iv := cfg.recheckInterval(); iv > 0 {
		f.open = newOpen()
		go f.recheckLoop(iv)
	}
	return f, nil
}

// SetSnapshot verifies a signed snapshot and swaps it in (see Decider.SetSnapshot). delta is
// nil unless the manifest names one. In-flight requests finish on the snapshot they started
// with.
func (f *Filter) SetSnapshot(manifest []byte, objects [][]byte, delta []byte) (*Info, error) {
	info, err := f.decider.SetSnapshot(Snapshot{Manifest: manifest, Objects: objects, Delta: delta})
	if err == nil {
		// What the new snapshot revokes ends the open requests it covers too.
		f.kickRecheck()
	}
	return info, err
}

// Decider returns the filter's decider.
func (f *Filter) Decider() Decider { return f.decider }

// Close stops rechecking open requests and releases the decider.
func (f *Filter) Close(ctx context.Context) error {
	if f.open != nil {
		select {
		case <-f.open.stop:
		default:
			close(f.open.stop)
		}
		<-f.open.done
	}
	return f.decider.Close(ctx)
}

func (f *Filter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, _ := f.scratch.Get().(*scratch)
	if s == nil {
		s = &scratch{}
	}
	defer f.scratch.Put(s)
	s.in = Input{Now: f.now().UnixNano(), Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery, Header: r.Header}
	res := &s.res
	if err := f.decider.Decide(&s.in, res); err != nil {
		// Fail closed: the decider could not decide (a broken Wasm instance, ...).
		unavailable(res)
		if f.observe != nil {
			f.observe(res)
		}
		writeDenial(w, res)
		return
	}
	if f.observe != nil {
		f.observe(res)
	}
	if !res.Allow {
		writeDenial(w, res)
		return
	}
	if f.open != nil && res.Snapshot != nil {
		var done func()
		r, done = f.open.track(r, &s.in, res)
		defer done()
	}
	f.next.ServeHTTP(w, forwarded(r, res))
}

// unavailable makes res the core's default 503, for a request no decider could decide.
func unavailable(res *Result) {
	var d abi.Decision
	d.Set(&verifier.Decision{Status: 503, Reason: policy.ReasonUnavailable, Response: policy.DefaultError(policy.ReasonUnavailable)})
	if err := res.setFrom(&d); err != nil {
		panic("filter: the default 503 does not encode: " + err.Error())
	}
	res.Snapshot = nil
}

// forwarded returns the request to send upstream: incoming identity headers removed, the
// decision's identity headers set, the query token removed when the decision says so. It
// copies what it changes and leaves r alone.
func forwarded(r *http.Request, res *Result) *http.Request {
	info := res.Snapshot
	if info == nil {
		return r
	}
	strip := false
	for _, name := range info.canonStrip {
		if _, ok := r.Header[name]; ok {
			strip = true
			break
		}
	}
	query := res.StripQueryToken && info.QueryParam != "" && r.URL.RawQuery != ""
	if !strip && !query && len(res.Identity) == 0 {
		return r
	}
	out := new(http.Request)
	*out = *r
	if strip || len(res.Identity) > 0 {
		out.Header = r.Header.Clone()
		if out.Header == nil {
			out.Header = http.Header{}
		}
		for _, name := range info.canonStrip {
			delete(out.Header, name)
		}
		setIdentity(out.Header, info, res.Identity)
	}
	if query {
		u := *r.URL
		u.RawQuery = string(abi.AppendQueryWithout(nil, u.RawQuery, info.QueryParam))
		u.ForceQuery = false
		out.URL = &u
		if r.RequestURI != "" {
			out.RequestURI = u.RequestURI()
		}
		// Parsed forms would still hold the token.
		out.Form, out.PostForm = nil, nil
	}
	return out
}

// setIdentity sets the identity headers with three allocations in all: one string holding
// every value, one slice backing every header's value list, and the header map's growth.
func setIdentity(h http.Header, info *Info, ids []abi.Header) {
	if len(ids) == 0 {
		return
	}
	n := 0
	for _, x := range ids {
		n += len(x.Value)
	}
	buf := make([]byte, 0, n)
	for _, x := range ids {
		buf = append(buf, x.Value...)
	}
	all := string(buf)
	vals := make([]string, len(ids))
	off := 0
	for i, x := range ids {
		vals[i] = all[off : off+len(x.Value)]
		off += len(x.Value)
		h[info.canonical(x.Name)] = vals[i : i+1 : i+1]
	}
}

// writeDenial writes a rendered denial: status, headers in order (Retry-After added on a 429
// whose rendering has none), body.
func writeDenial(w http.ResponseWriter, res *Result) {
	h := w.Header()
	for _, x := range res.Headers {
		h.Del(string(x.Name))
	}
	for _, x := range res.Headers {
		h.Add(string(x.Name), string(x.Value))
	}
	if res.RetryAfter > 0 && h.Get("Retry-After") == "" {
		h.Set("Retry-After", strconv.FormatInt(res.RetryAfter, 10))
	}
	h.Set("Content-Length", strconv.Itoa(len(res.Body)))
	w.WriteHeader(res.Status)
	_, _ = w.Write(res.Body)
}
