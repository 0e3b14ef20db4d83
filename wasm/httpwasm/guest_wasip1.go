//go:build wasip1

package main

//lint:file-ignore U1000 the host reaches this code through //go:wasmexport and //go:wasmimport, which staticcheck does not follow

import (
	"strconv"
	"time"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/httpwasm/config"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

var (
	// cfgBytes holds the configuration for the guest's lifetime: the snapshot points into it.
	cfgBytes []byte
	cfg      config.Config
	engine   = verifier.NewEngine(verifier.Options{Crypto: hostcrypto.Std})
	// info describes the snapshot held: the headers the policy reads, the identity headers to
	// strip, the query credential parameter.
	info abi.LoadResult

	req      verifier.Request
	decision abi.Decision
	methodB  = make([]byte, 16)
	uriB     = make([]byte, 1024)
	valueB   = make([]byte, 1024)
	values   [][]byte // per policy header: its own buffer, since req.Headers points into them
	names    [][]byte // info.Headers as bytes
	uriOut   []byte
	numB     []byte
)

// init loads the configuration when the host instantiates the guest (_initialize): a bad
// configuration is logged and every request is then denied 503 by the engine, which holds no
// snapshot.
func init() {
	if err := load(); err != "" {
		logErr("latchkey: " + err)
	}
}

func load() string {
	var buf []byte
	n := hostGetConfig(nil, 0)
	if n == 0 {
		return "no guest configuration: the snapshot travels in it (see wasm/httpwasm/README.md)"
	}
	buf = make([]byte, n)
	if m := hostGetConfig(ptr(buf), n); m != n {
		return "guest configuration changed while read"
	}
	cfgBytes = buf
	if err := config.Decode(cfgBytes, &cfg); err != nil {
		return err.Error()
	}
	if cfg.NowOverride != 0 && !fixedClockAllowed {
		return "now_override is a testing knob: this build (without the tag latchkey_fixedclock) refuses it"
	}
	engine = verifier.NewEngine(verifier.Options{
		Crypto:              hostcrypto.Std,
		MaxStalenessSeconds: cfg.MaxStalenessSeconds,
		TokenCacheSize:      int(cfg.TokenCacheSize),
	})
	cfg.Load.Now = now()
	st, err := cfg.Load.Open(nil, hostcrypto.Std)
	if err != nil {
		return abi.NewLoadError(err).Error()
	}
	engine.SetState(st)
	abi.Describe(st, &info)
	values = make([][]byte, len(info.Headers))
	names = make([][]byte, len(info.Headers))
	for i, name := range info.Headers {
		values[i], names[i] = make([]byte, 256), []byte(name)
	}
	return ""
}

// now is the guest's clock: WASI's clock_time_get, or the configuration's now_override in a
// build tagged latchkey_fixedclock.
func now() int64 {
	if fixedClockAllowed && cfg.NowOverride != 0 {
		return cfg.NowOverride
	}
	return time.Now().UnixNano()
}

//go:wasmexport handle_request
func handleRequest() uint64 {
	method := fill(&methodB, getMethod)
	uri := fill(&uriB, getURI)
	path, rawQuery, hasQuery := abi.SplitTarget(uri)
	hs := req.Headers[:0]
	req = verifier.Request{Now: now(), Method: clampField(method), Path: clampField(path)}
	if q := info.QueryParam; q != "" && hasQuery {
		if v, ok := abi.QueryValue(rawQuery, q); ok {
			req.QueryToken, req.HasQueryToken = clampField(v), true
		}
	}
	for i, name := range info.Headers {
		if len(hs) == abi.MaxRequestHeaders {
			break
		}
		if v, ok := firstHeaderValue(&values[i], name); ok {
			hs = append(hs, verifier.Header{Name: names[i], Value: clampField(v)})
		}
	}
	req.Headers = hs
	decision.Set(engine.Decide(&req))
	if !decision.Allow {
		deny()
		return 0
	}
	for _, name := range info.Strip {
		removeHeader(kindRequest, name)
	}
	for _, h := range decision.Identity {
		setHeader(kindRequest, h.Name, h.Value)
	}
	if decision.StripQueryToken && info.QueryParam != "" && len(rawQuery) > 0 {
		uriOut = append(uriOut[:0], path...)
		if len(uriOut) == 0 {
			uriOut = append(uriOut, '/')
		}
		start := len(uriOut) + 1
		uriOut = append(uriOut, '?')
		uriOut = abi.AppendQueryWithout(uriOut, rawQuery, info.QueryParam)
		if len(uriOut) == start {
			uriOut = uriOut[:start-1]
		}
		hostSetURI(ptr(uriOut), uint32(len(uriOut)))
	}
	return 1
}

// deny writes the rendered denial as edge/filter does: its headers (replacing any the host
// set), Retry-After on 429 unless rendered, Content-Length, the status, the body. Headers go
// first: hosts send them with the status.
func deny() {
	for _, h := range decision.Headers {
		removeHeader(kindResponse, string(h.Name))
	}
	retry := decision.RetryAfter > 0
	for _, h := range decision.Headers {
		addHeader(kindResponse, h.Name, h.Value)
		if retry && equalFold(h.Name, "retry-after") {
			retry = false
		}
	}
	if retry {
		numB = strconv.AppendInt(numB[:0], decision.RetryAfter, 10)
		setHeader(kindResponse, []byte("Retry-After"), numB)
	}
	numB = strconv.AppendInt(numB[:0], int64(len(decision.Body)), 10)
	setHeader(kindResponse, []byte("Content-Length"), numB)
	hostSetStatusCode(uint32(decision.Status))
	if len(decision.Body) > 0 {
		hostWriteBody(kindResponse, ptr(decision.Body), uint32(len(decision.Body)))
	}
}

//go:wasmexport handle_response
func handleResponse(reqCtx uint32, isError uint32) {}

func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// clampField cuts a field at abi.MaxFieldBytes bytes (as edge/filter does): every
// limit of the core is far below, so the decision is the same.
func clampField(b []byte) []byte {
	if len(b) > abi.MaxFieldBytes {
		return b[:abi.MaxFieldBytes]
	}
	return b
}
