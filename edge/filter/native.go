package filter

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// native decides with the core compiled into this process: the reference every Wasm host is
// compared against. Its engines share one State.
type native struct {
	cfg  Config
	opts verifier.Options
	mu   sync.Mutex // serialises SetSnapshot
	cur  atomic.Pointer[nativeSnap]
	pool *pool[*nativeEngine]
}

type nativeSnap struct {
	st   *verifier.State
	info *Info
}

type nativeEngine struct {
	e    *verifier.Engine
	snap *nativeSnap
	req  verifier.Request
	d    abi.Decision
}

func newNative(cfg Config) *native {
	n := &native{cfg: cfg, opts: verifier.Options{
		Crypto:              hostcrypto.Std,
		TokenCacheSize:      cfg.tokenCacheSize,
		MaxStalenessSeconds: int64(cfg.maxStaleness.Seconds()),
	}}
	n.pool = newPool(cfg.pool(), func() (*nativeEngine, error) {
		return &nativeEngine{e: verifier.NewEngine(n.opts)}, nil
	})
	return n
}

func (n *native) SetSnapshot(s Snapshot) (*Info, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var held *verifier.State
	if c := n.cur.Load(); c != nil {
		held = c.st
	}
	ld := abi.Load{Now: n.cfg.clock()().UnixNano(), Trusted: n.cfg.trusted, Manifest: s.Manifest, Objects: s.Objects, Delta: s.Delta}
	if abi.LoadLen(&ld) < 0 {
		return nil, abi.NewLoadError(abi.ErrTooLarge)
	}
	st, err := ld.Open(held, hostcrypto.Std)
	if err != nil {
		return nil, abi.NewLoadError(err)
	}
	var r abi.LoadResult
	abi.Describe(st, &r)
	snap := &nativeSnap{st: st, info: newInfo(&r)}
	n.cur.Store(snap)
	return snap.info, nil
}

func (n *native) Decide(in *Input, res *Result) error {
	e, err := n.pool.get()
	if err != nil {
		return err
	}
	defer n.pool.put(e)
	if snap := n.cur.Load(); snap != e.snap {
		e.e.SetState(snap.st)
		e.snap = snap
	}
	var info *Info
	if e.snap != nil {
		info = e.snap.info
	}
	request(in, info, &e.req)
	e.d.Set(e.e.Decide(&e.req))
	res.Snapshot = info
	return res.setFrom(&e.d)
}

func (n *native) Close(context.Context) error { return nil }
