//go:build wasip1

package main

import (
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/types"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/policy"
	"github.com/latchkeyhq/latchkey/shared/snapshot"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/proxywasm/config"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// init runs when the host instantiates the module (_initialize): the SDK needs the VM context
// before any export is called.
func init() { proxywasm.SetVMContext(&vmContext{}) }

type vmContext struct{ types.DefaultVMContext }

// NewPluginContext gives every plugin (every filter configuration using this VM) its own
// engine: its own snapshot, token cache and rate buckets.
func (*vmContext) NewPluginContext(uint32) types.PluginContext {
	p := &plugin{engine: verifier.NewEngine(verifier.Options{Crypto: hostcrypto.Std})}
	p.stream.p = p
	return p
}

// plugin is one filter configuration: the engine deciding its requests and the refresher
// keeping its snapshot current. Until a snapshot loads, the engine holds none and denies
// every request 503; a configuration that does not parse leaves it so for good.
type plugin struct {
	types.DefaultPluginContext
	cfg     *config.Config
	engine  *verifier.Engine
	refresh *refresher
	// info describes the snapshot held: the request headers the policy reads, the identity
	// headers to strip, the query credential parameter.
	info abi.LoadResult
	// tick is the tick period set, in ms.
	tick uint32

	// stream is the HTTP context of every stream: deciding keeps no per-stream state (it all
	// happens in OnHttpRequestHeaders), so one value serves them all and no stream allocates.
	stream httpContext

	// Scratch of the decision path, reused by every request.
	req     verifier.Request
	headers [][2]string
	target  []byte
	num     []byte
}

// OnPluginStart reads the configuration. It always reports success: a bad configuration is
// logged and every request is then denied 503 (refusing the start would make Envoy reject the
// listener's whole configuration instead).
func (p *plugin) OnPluginStart(int) types.OnPluginStartStatus {
	if err := p.configure(); err != "" {
		proxywasm.LogError("latchkey: " + err + "; every request is denied 503")
		return types.OnPluginStartStatusOK
	}
	if p.cfg.Snapshot != nil {
		if err := p.openInitial(); err != nil {
			next := "every request is denied 503"
			if p.refresh != nil {
				next = "every request is denied 503 until a refresh loads one"
			}
			proxywasm.LogError("latchkey: initial snapshot refused: " + err.Error() + "; " + next)
		}
	}
	if p.refresh != nil {
		p.schedule()
		p.startRefresh()
	}
	return types.OnPluginStartStatusOK
}

func (p *plugin) configure() string {
	raw, err := proxywasm.GetPluginConfiguration()
	if err != nil || len(raw) == 0 {
		return "no plugin configuration: it carries the pinned manifest keys (see wasm/proxywasm/README.md)"
	}
	cfg, err := config.Parse(raw)
	if err != nil {
		return err.Error()
	}
	if cfg.NowOverride != 0 && !fixedClockAllowed {
		return "proxywasm config: now_override: a testing knob: this build (without the tag latchkey_fixedclock) refuses it"
	}
	p.cfg = cfg
	p.engine = verifier.NewEngine(verifier.Options{
		Crypto:              hostcrypto.Std,
		MaxStalenessSeconds: cfg.MaxStalenessSeconds,
		TokenCacheSize:      cfg.TokenCacheSize,
	})
	if cfg.Refresh != nil {
		p.refresh = newRefresher(cfg.Refresh, cfg.ManifestKeys)
	}
	return ""
}

// openInitial loads the configuration's snapshot at the guest's clock.
func (p *plugin) openInitial() error {
	s := p.cfg.Snapshot
	ld := abi.Load{Now: p.now(), Trusted: p.cfg.ManifestKeys, Manifest: s.Manifest, Objects: s.Objects, Delta: s.Delta}
	st, err := ld.Open(nil, hostcrypto.Std)
	if err != nil {
		return err
	}
	if r := p.refresh; r != nil {
		if realm := st.View().Realm(); realm != r.cfg.Realm {
			return errors.New("snapshot of realm " + strconv.Quote(realm) + ", refresh.realm is " + strconv.Quote(r.cfg.Realm))
		}
		// Open verified this manifest already: this only recovers its object references.
		m, err := snapshot.VerifyManifest(s.Manifest, p.cfg.ManifestKeys, hostcrypto.Std)
		if err != nil {
			return err
		}
		r.hold(st, s.Manifest, m.Objects, s.Objects, "")
	}
	p.use(st)
	return nil
}

// use puts st in service.
func (p *plugin) use(st *verifier.State) {
	p.engine.SetState(st)
	abi.Describe(st, &p.info)
	if cap(p.req.Headers) < len(p.info.Headers) {
		p.req.Headers = make([]verifier.Header, 0, len(p.info.Headers))
	}
	proxywasm.LogInfo("latchkey: serving realm " + p.info.Realm + " snapshot version " + strconv.FormatUint(p.info.Version, 10))
}

// now is the guest's clock: the host's wall clock (WASI clock_time_get; Envoy's
// proxy-wasm host answers it from the same time source as proxy_get_current_time_nanoseconds),
// or the configuration's now_override in a build tagged latchkey_fixedclock.
func (p *plugin) now() int64 {
	if fixedClockAllowed && p.cfg != nil && p.cfg.NowOverride != 0 {
		return p.cfg.NowOverride
	}
	return time.Now().UnixNano()
}

// schedule sets the tick period: the refresh interval, or bootstrapTickMillis while no
// snapshot is held, if that is sooner.
func (p *plugin) schedule() {
	want := uint32(p.refresh.cfg.IntervalSeconds * 1000)
	if p.engine.State() == nil && want > bootstrapTickMillis {
		want = bootstrapTickMillis
	}
	if want == p.tick {
		return
	}
	if err := proxywasm.SetTickPeriodMilliSeconds(want); err != nil {
		proxywasm.LogError("latchkey: cannot set the refresh tick: " + err.Error() + "; the snapshot will not be refreshed")
		return
	}
	p.tick = want
}

func (p *plugin) OnTick() {
	if p.refresh != nil {
		p.startRefresh()
	}
}

func (p *plugin) startRefresh() {
	f, ok := p.refresh.begin(p.now())
	if ok {
		p.send(f)
	}
}

// send dispatches f to the snapshot cluster.
func (p *plugin) send(f fetch) {
	r := p.refresh.cfg
	hs := [][2]string{{":method", "GET"}, {":path", f.path}, {":authority", r.Authority}, {"user-agent", "latchkey-proxywasm"}}
	if f.ifNoneMatch != "" {
		hs = append(hs, [2]string{"if-none-match", f.ifNoneMatch})
	}
	gen := f.gen
	_, err := proxywasm.DispatchHttpCall(r.Cluster, hs, nil, nil, uint32(r.TimeoutMillis), func(numHeaders, bodySize, _ int) {
		p.answered(gen, numHeaders, bodySize)
	})
	if err != nil {
		p.refresh.abort()
		proxywasm.LogWarn("latchkey: snapshot refresh: cannot call cluster " + r.Cluster + ": " + err.Error() + "; keeping the snapshot held, retrying at the next tick")
	}
}

// answered takes the answer to the request gen (no headers: the host got none).
func (p *plugin) answered(gen uint32, numHeaders, bodySize int) {
	status, etag := 0, ""
	if numHeaders > 0 {
		hs, err := proxywasm.GetHttpCallResponseHeaders()
		if err == nil {
			for _, h := range hs {
				switch h[0] {
				case ":status":
					status, _ = strconv.Atoi(h[1])
				case "etag":
					etag = h[1]
				}
			}
		}
	}
	var body []byte
	if status == 200 && bodySize > 0 && bodySize <= p.refresh.limit() {
		if b, err := proxywasm.GetHttpCallResponseBody(0, bodySize); err == nil {
			body = b
		}
	}
	out := p.refresh.receive(gen, status, etag, bodySize, body, p.now())
	switch {
	case out.more:
		p.send(out.next)
	case out.loaded != nil:
		p.use(out.loaded)
		p.schedule()
	case out.err != "":
		msg := "latchkey: snapshot refresh: " + out.err + "; keeping " + p.held()
		if out.refused {
			proxywasm.LogError(msg)
		} else {
			proxywasm.LogWarn(msg)
		}
	}
}

func (p *plugin) held() string {
	if p.engine.State() == nil {
		return "no snapshot (every request is denied 503)"
	}
	return "snapshot version " + strconv.FormatUint(p.info.Version, 10)
}

func (p *plugin) NewHttpContext(uint32) types.HttpContext { return &p.stream }

// httpContext decides a stream's request on its headers.
type httpContext struct {
	types.DefaultHttpContext
	p *plugin
}

func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action { return h.p.decide() }

// decide reads the method, the request target and the headers the policy names (first value
// of each), decides, and then forwards the request (the incoming identity headers removed,
// the decision's set, the query credential removed from :path when the decision says so) or
// answers it with the rendered denial.
func (p *plugin) decide() types.Action {
	method, _ := proxywasm.GetHttpRequestHeader(":method")
	target, _ := proxywasm.GetHttpRequestHeader(":path")
	path, rawQuery, hasQuery := abi.SplitTarget(target)
	r := &p.req
	hs := r.Headers[:0]
	*r = verifier.Request{Now: p.now(), Method: clamp(method), Path: clamp(path)}
	if q := p.info.QueryParam; q != "" && hasQuery {
		if v, ok := abi.QueryValue(rawQuery, q); ok {
			r.QueryToken, r.HasQueryToken = clamp(v), true
		}
	}
	for _, name := range p.info.Headers {
		if len(hs) == abi.MaxRequestHeaders {
			break
		}
		if v, err := proxywasm.GetHttpRequestHeader(name); err == nil {
			hs = append(hs, verifier.Header{Name: bytesOf(name), Value: clamp(v)})
		}
	}
	r.Headers = hs
	d := p.engine.Decide(r)
	if !d.Allow {
		return p.deny(d.Status, d.Response, d.RetryAfter)
	}
	for _, name := range p.info.Strip {
		if err := proxywasm.RemoveHttpRequestHeader(name); err != nil && !errors.Is(err, types.ErrorStatusNotFound) {
			return p.failed("cannot remove the identity header " + name + ": " + err.Error())
		}
	}
	for _, h := range d.IdentityHeaders() {
		if err := proxywasm.ReplaceHttpRequestHeader(stringOf(h.Name), stringOf(h.Value)); err != nil {
			return p.failed("cannot set the identity header " + string(h.Name) + ": " + err.Error())
		}
	}
	if d.StripQueryToken && p.info.QueryParam != "" && hasQuery {
		p.target = append(p.target[:0], path...)
		p.target = append(p.target, '?')
		p.target = abi.AppendQueryWithout(p.target, rawQuery, p.info.QueryParam)
		if p.target[len(p.target)-1] == '?' {
			p.target = p.target[:len(p.target)-1]
		}
		if err := proxywasm.ReplaceHttpRequestHeader(":path", stringOf(p.target)); err != nil {
			return p.failed("cannot remove the query credential from :path: " + err.Error())
		}
	}
	return types.ActionContinue
}

// deny answers with a rendered denial: its status, its headers in order (Retry-After added
// on a 429 that renders none) and its exact body. The host adds Content-Length.
func (p *plugin) deny(status int, resp *policy.Response, retryAfter int64) types.Action {
	if resp == nil { // the engine renders every denial; never forward for lack of one
		resp = policy.DefaultError(policy.ReasonUnavailable)
	}
	hs := p.headers[:0]
	retry := retryAfter > 0
	for _, h := range resp.Headers {
		hs = append(hs, [2]string{h.Name, h.Value})
		if retry && equalFold(h.Name, "retry-after") {
			retry = false
		}
	}
	if retry {
		p.num = strconv.AppendInt(p.num[:0], retryAfter, 10)
		hs = append(hs, [2]string{"retry-after", stringOf(p.num)})
	}
	p.headers = hs
	if err := proxywasm.SendHttpResponse(uint32(status), hs, resp.Body, -1); err != nil {
		proxywasm.LogError("latchkey: cannot send the denial (" + strconv.Itoa(status) + "): " + err.Error())
	}
	// Paused either way: a denied request never goes on.
	return types.ActionPause
}

// failed denies a request the filter could not finish forwarding safely (503).
func (p *plugin) failed(why string) types.Action {
	proxywasm.LogError("latchkey: " + why + "; request denied 503")
	r := policy.DefaultError(policy.ReasonUnavailable)
	return p.deny(r.Status, r, 0)
}

// clamp views s as bytes, cut at abi.MaxFieldBytes as every host does: every limit of the
// core is far below, so the decision is the same.
func clamp(s string) []byte {
	if len(s) > abi.MaxFieldBytes {
		s = s[:abi.MaxFieldBytes]
	}
	return bytesOf(s)
}

// bytesOf views s as bytes; nothing may write through the result.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// stringOf views b as a string; b must not change while the string is in use.
func stringOf(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func equalFold(s, lower string) bool {
	if len(s) != len(lower) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
