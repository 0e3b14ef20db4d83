package filter

import (
	"context"
	"errors"
	"net/http"
	"net/textproto"
	"unsafe"

	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// Decider decides requests from the newest snapshot it was given. The native core and the
// wazero-hosted Wasm module implement it alike: same snapshot, same input, same decision.
// It is safe for concurrent use.
type Decider interface {
	// SetSnapshot verifies a signed snapshot (manifest signature under the pinned keys,
	// freshness and rollback against the version held, every object's digest) and makes it
	// the one decisions use. On error the previous snapshot stays in use and the error is an
	// *abi.LoadError (errors.Is matches snapshot.ErrRollback, snapshot.ErrSignature, ...).
	// The byte slices must not change afterwards.
	SetSnapshot(s Snapshot) (*Info, error)
	// Decide decides in into res. res is reused: its slices stay valid until its next use.
	Decide(in *Input, res *Result) error
	// Close releases the decider.
	Close(ctx context.Context) error
}

// Snapshot is a signed snapshot as published: the manifest, its objects in manifest order,
// and the delta the manifest names (nil when none).
type Snapshot struct {
	Manifest []byte
	Objects  [][]byte
	Delta    []byte
}

// Input is one request as a Decider reads it. The strings are read in place, never written.
type Input struct {
	// Now is the host's clock in Unix nanoseconds.
	Now    int64
	Method string
	// Path is the request path as received (escaped), without the query string.
	Path     string
	RawQuery string
	Header   http.Header
	// Recheck marks a request allowed before and decided again while it is still open: it
	// takes nothing from the rate limiter (verifier.Request.Recheck).
	Recheck bool
}

// Info describes a loaded snapshot and what a host needs from its policy.
type Info struct {
	Version    uint64
	Realm      string
	QueryParam string
	// Headers are the request headers the policy reads, lower case.
	Headers []string
	// Strip are the identity headers removed from every request, lower case.
	Strip []string

	canonHeaders []string
	canonStrip   []string
}

func newInfo(r *abi.LoadResult) *Info {
	in := &Info{Version: r.Version, Realm: r.Realm, QueryParam: r.QueryParam,
		Headers: append([]string(nil), r.Headers...), Strip: append([]string(nil), r.Strip...)}
	for _, h := range in.Headers {
		in.canonHeaders = append(in.canonHeaders, textproto.CanonicalMIMEHeaderKey(h))
	}
	for _, h := range in.Strip {
		in.canonStrip = append(in.canonStrip, textproto.CanonicalMIMEHeaderKey(h))
	}
	return in
}

// canonical returns the canonical form of an identity header name; identity headers are the
// ones the snapshot strips, so their canonical names are known in advance.
func (in *Info) canonical(name []byte) string {
	for i, s := range in.Strip {
		if string(name) == s {
			return in.canonStrip[i]
		}
	}
	return textproto.CanonicalMIMEHeaderKey(string(name))
}

// Result is a decision and the snapshot it was made from: the query parameter to strip and
// the identity headers to remove belong to that snapshot.
type Result struct {
	abi.Decision
	// Snapshot is nil when no snapshot was loaded (the decision is then a 503).
	Snapshot *Info
	raw      []byte
}

// Reason names the denial's reason ("missing", "scope", ...; "none" on allow).
func (r *Result) Reason() string { return verifier.Reason(r.Decision.Reason).String() }

// setFrom stores the encoding of d in r and decodes it from there: r then owns its bytes,
// exactly as a Wasm host's copy out of guest memory does.
func (r *Result) setFrom(d *abi.Decision) error {
	var err error
	if r.raw, err = abi.AppendDecision(r.raw[:0], d); err != nil {
		return err
	}
	return r.Decision.Decode(r.raw)
}

// request fills r from in, passing only the headers the snapshot's policy reads (the first
// value of each). A field longer than abi.MaxFieldBytes is cut there: every limit of the
// core is far below, so the decision is the same (a cut path still cannot be routed, a cut
// credential is still too long to be valid).
func request(in *Input, info *Info, r *verifier.Request) {
	hs := r.Headers[:0]
	*r = verifier.Request{Now: in.Now, Method: field(in.Method), Path: field(in.Path), Headers: hs, Recheck: in.Recheck}
	if info == nil {
		return
	}
	if info.QueryParam != "" {
		if v, ok := abi.QueryValue(in.RawQuery, info.QueryParam); ok {
			r.QueryToken, r.HasQueryToken = field(v), true
		}
	}
	for i, name := range info.canonHeaders {
		if len(hs) == abi.MaxRequestHeaders {
			break
		}
		if vs := in.Header[name]; len(vs) > 0 {
			hs = append(hs, verifier.Header{Name: view(info.Headers[i]), Value: field(vs[0])})
		}
	}
	r.Headers = hs
}

func field(s string) []byte {
	if len(s) > abi.MaxFieldBytes {
		s = s[:abi.MaxFieldBytes]
	}
	return view(s)
}

// view returns s's bytes without copying; callers only read them.
func view(s string) []byte {
	if s == "" {
		return nil
	}
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// pool holds at most size items, made on demand; get waits when all are in use.
type pool[T any] struct {
	idle   chan T
	slots  chan struct{}
	create func() (T, error)
}

func newPool[T any](size int, create func() (T, error)) *pool[T] {
	return &pool[T]{idle: make(chan T, size), slots: make(chan struct{}, size), create: create}
}

func (p *pool[T]) get() (T, error) {
	select {
	case x := <-p.idle:
		return x, nil
	default:
	}
	select {
	case x := <-p.idle:
		return x, nil
	case p.slots <- struct{}{}:
		x, err := p.create()
		if err != nil {
			<-p.slots
		}
		return x, err
	}
}

// tryGet returns an idle item without waiting or creating one.
func (p *pool[T]) tryGet() (T, bool) {
	select {
	case x := <-p.idle:
		return x, true
	default:
		var zero T
		return zero, false
	}
}

func (p *pool[T]) put(x T) { p.idle <- x }

// discard gives up an item's slot (it broke, or the pool is closing).
func (p *pool[T]) discard() { <-p.slots }

// errClosed is returned by a closed decider.
var errClosed = errors.New("filter: decider closed")
