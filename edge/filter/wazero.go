package filter

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/latchkeyhq/latchkey/shared/hostcrypto"
	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// hostModuleName is the module an accelerated guest imports its crypto from (ABI.md).
const hostModuleName = "latchkey"

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

type signature struct{ params, results []api.ValueType }

// exports are the functions a verifier module must export, with their signatures.
var exports = map[string]signature{
	"_initialize":    {},
	"lk_abi_version": {nil, []api.ValueType{i32}},
	"lk_alloc":       {[]api.ValueType{i32}, []api.ValueType{i32}},
	"lk_free":        {[]api.ValueType{i32}, nil},
	"lk_configure":   {[]api.ValueType{i64, i32}, []api.ValueType{i32}},
	"lk_load":        {[]api.ValueType{i32, i32}, []api.ValueType{i64}},
	"lk_decide":      {[]api.ValueType{i32, i32}, []api.ValueType{i64}},
	"lk_error":       {nil, []api.ValueType{i64}},
}

// hostFunctions are the crypto imports this host provides to accelerated guests.
var hostFunctions = map[string]signature{
	"sha256":         {[]api.ValueType{i32, i32, i32}, nil},
	"ed25519_verify": {[]api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}},
	"p256_verify":    {[]api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32}},
}

// module is a compiled verifier module in its own runtime, with WASI and the host crypto
// module instantiated: ready to instantiate guests from.
type module struct {
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	accel    bool
}

// compile compiles wasm (using cache, which may be nil) and checks that it is a verifier
// module this host can run.
func compile(ctx context.Context, wasm []byte, cache wazero.CompilationCache) (*module, error) {
	rc := wazero.NewRuntimeConfig()
	if cache != nil {
		rc = rc.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	m := &module{rt: rt}
	var err error
	if m.compiled, err = rt.CompileModule(ctx, wasm); err != nil {
		rt.Close(ctx)
		return nil, errors.New("wasm: compile: " + err.Error())
	}
	if err = m.check(); err == nil {
		if _, err = wasi_snapshot_preview1.Instantiate(ctx, rt); err == nil {
			err = instantiateHost(ctx, rt)
		}
	}
	if err != nil {
		rt.Close(ctx)
		return nil, err
	}
	return m, nil
}

// check refuses a module that imports anything but WASI and this host's crypto, lacks an
// export, or has one with the wrong signature.
func (m *module) check() error {
	for _, def := range m.compiled.ImportedFunctions() {
		mod, name, _ := def.Import()
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
		case hostModuleName:
			sig, ok := hostFunctions[name]
			if !ok {
				return errors.New("wasm: module imports " + mod + "." + name + ", which this host does not provide")
			}
			if !sameTypes(def.ParamTypes(), sig.params) || !sameTypes(def.ResultTypes(), sig.results) {
				return errors.New("wasm: import " + mod + "." + name + " has signature " + sigString(def.ParamTypes(), def.ResultTypes()) +
					", this host provides " + sigString(sig.params, sig.results))
			}
			m.accel = true
		default:
			return errors.New("wasm: module imports " + mod + "." + name + ", which this host does not provide")
		}
	}
	fns := m.compiled.ExportedFunctions()
	var missing []string
	for name, sig := range exports {
		def, ok := fns[name]
		if !ok {
			missing = append(missing, name)
			continue
		}
		if !sameTypes(def.ParamTypes(), sig.params) || !sameTypes(def.ResultTypes(), sig.results) {
			return errors.New("wasm: export " + name + " has signature " + sigString(def.ParamTypes(), def.ResultTypes()) +
				", want " + sigString(sig.params, sig.results))
		}
	}
	if len(missing) > 0 {
		return errors.New("wasm: not a latchkey verifier module: missing exports " + strings.Join(sorted(missing), ", "))
	}
	if _, ok := m.compiled.ExportedMemories()["memory"]; !ok {
		return errors.New("wasm: not a latchkey verifier module: no exported memory")
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sigString(params, results []api.ValueType) string {
	s := func(ts []api.ValueType) string {
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = api.ValueTypeName(t)
		}
		return "(" + strings.Join(names, ", ") + ")"
	}
	return s(params) + " -> " + s(results)
}

func sorted(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// instantiateHost provides the crypto imports of accelerated guests, backed by Go's crypto.
// Out-of-range pointers make a verify fail and a hash trap: a guest that passes them is
// broken.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(hostModuleName)
	for name, fn := range map[string]api.GoModuleFunc{
		"sha256":         hostSHA256,
		"ed25519_verify": hostEd25519Verify,
		"p256_verify":    hostP256Verify,
	} {
		sig := hostFunctions[name]
		b = b.NewFunctionBuilder().WithGoModuleFunction(fn, sig.params, sig.results).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return errors.New("wasm: host module: " + err.Error())
	}
	return nil
}

func hostSHA256(_ context.Context, m api.Module, stack []uint64) {
	mem := m.Memory()
	data, ok1 := mem.Read(api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	out, ok2 := mem.Read(api.DecodeU32(stack[2]), sha256.Size)
	if !ok1 || !ok2 {
		panic(errors.New("wasm: latchkey.sha256: pointer out of range"))
	}
	sum := sha256.Sum256(data)
	copy(out, sum[:])
}

// verifyArgs reads the (pub, msg, sig) pointer and length pairs of a verify import.
func verifyArgs(m api.Module, stack []uint64) (pub, msg, sig []byte, ok bool) {
	mem := m.Memory()
	var ok1, ok2, ok3 bool
	pub, ok1 = mem.Read(api.DecodeU32(stack[0]), api.DecodeU32(stack[1]))
	msg, ok2 = mem.Read(api.DecodeU32(stack[2]), api.DecodeU32(stack[3]))
	sig, ok3 = mem.Read(api.DecodeU32(stack[4]), api.DecodeU32(stack[5]))
	return pub, msg, sig, ok1 && ok2 && ok3
}

func hostEd25519Verify(_ context.Context, m api.Module, stack []uint64) {
	pub, msg, sig, ok := verifyArgs(m, stack)
	ok = ok && len(pub) == ed25519.PublicKeySize && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig)
	stack[0] = boolResult(ok)
}

func hostP256Verify(_ context.Context, m api.Module, stack []uint64) {
	pub, msg, sig, ok := verifyArgs(m, stack)
	stack[0] = boolResult(ok && hostcrypto.Std.VerifyES256(pub, msg, sig))
}

func boolResult(ok bool) uint64 {
	if ok {
		return 1
	}
	return 0
}

func (m *module) close(ctx context.Context) error { return m.rt.Close(ctx) }

// wasmDecider hosts the verifier module: a pool of instances, each with its own engine and
// copy of the snapshot. A new snapshot is verified in one instance first; once it passes it
// becomes current, idle instances load it at once and busy ones at their next checkout, so
// no request waits for, or is dropped by, a swap.
type wasmDecider struct {
	cfg   Config
	mod   *module
	owned bool // mod (and cache) belong to this decider
	cache wazero.CompilationCache

	mu     sync.Mutex // serialises SetSnapshot
	cur    atomic.Pointer[wasmSnap]
	pool   *pool[*instance]
	closed atomic.Bool
}

// wasmSnap is a snapshot that passed verification, kept to load into instances.
type wasmSnap struct {
	load abi.Load
	info *Info
}

// newWasm compiles cfg's module with the on-disk compilation cache and instantiates one
// instance eagerly, so that a module that cannot run fails here rather than on a request.
func newWasm(ctx context.Context, cfg Config) (*wasmDecider, error) {
	dir, err := cfg.compilationCacheDir()
	if err != nil {
		return nil, errors.New("wasm: compilation cache: " + err.Error())
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, errors.New("wasm: compilation cache: " + err.Error())
	}
	mod, err := compile(ctx, cfg.wasm, cache)
	if err != nil {
		cache.Close(ctx)
		return nil, err
	}
	d, err := newWasmDecider(mod, cfg)
	if err != nil {
		mod.close(ctx)
		cache.Close(ctx)
		return nil, err
	}
	d.owned, d.cache = true, cache
	return d, nil
}

// newWasmDecider makes a decider over an already compiled module.
func newWasmDecider(mod *module, cfg Config) (*wasmDecider, error) {
	d := &wasmDecider{cfg: cfg, mod: mod}
	d.pool = newPool(cfg.pool(), d.newInstance)
	in, err := d.checkout()
	if err != nil {
		return nil, err
	}
	d.pool.put(in)
	return d, nil
}

func (d *wasmDecider) newInstance() (*instance, error) {
	in, err := instantiate(context.Background(), d.mod, &d.cfg)
	if err != nil {
		return nil, err
	}
	return in, nil
}

// checkout takes an instance from the pool and brings it to the current snapshot.
func (d *wasmDecider) checkout() (*instance, error) {
	if d.closed.Load() {
		return nil, errClosed
	}
	in, err := d.pool.get()
	if err != nil {
		return nil, err
	}
	if cur := d.cur.Load(); cur != nil && in.snap != cur {
		if err := in.loadSnap(cur); err != nil {
			d.drop(in)
			return nil, err
		}
	}
	return in, nil
}

// drop closes a broken instance and frees its slot.
func (d *wasmDecider) drop(in *instance) {
	in.mod.Close(context.Background())
	d.pool.discard()
}

func (d *wasmDecider) SetSnapshot(s Snapshot) (*Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	snap := &wasmSnap{load: abi.Load{Now: d.cfg.clock()().UnixNano(), Trusted: d.cfg.trusted, Manifest: s.Manifest, Objects: s.Objects, Delta: s.Delta}}
	in, err := d.checkout()
	if err != nil {
		return nil, err
	}
	r, err := in.load(&snap.load)
	if err != nil {
		d.drop(in)
		return nil, err
	}
	if r.Status != abi.StatusOK {
		// The instance keeps the snapshot it held.
		d.pool.put(in)
		return nil, &abi.LoadError{Status: r.Status, Text: r.Error}
	}
	snap.info = newInfo(r)
	in.snap = snap
	d.cur.Store(snap)
	d.pool.put(in)
	// Idle instances come around in the order they were returned: once one is current, the
	// rest were refreshed (or were taken and will refresh at checkout).
	for {
		in, ok := d.pool.tryGet()
		if !ok {
			break
		}
		if in.snap == snap {
			d.pool.put(in)
			break
		}
		if err := in.loadSnap(snap); err != nil {
			d.drop(in)
			continue
		}
		d.pool.put(in)
	}
	return snap.info, nil
}

func (d *wasmDecider) Decide(in *Input, res *Result) error {
	inst, err := d.checkout()
	if err != nil {
		return err
	}
	var info *Info
	if inst.snap != nil {
		info = inst.snap.info
	}
	request(in, info, &inst.req)
	if err := inst.decide(res); err != nil {
		d.drop(inst)
		return err
	}
	res.Snapshot = info
	d.pool.put(inst)
	return nil
}

func (d *wasmDecider) Close(ctx context.Context) error {
	if d.closed.Swap(true) || !d.owned {
		return nil
	}
	err := d.mod.close(ctx)
	if cerr := d.cache.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// instance is one guest with its engine, request buffer and call stack.
type instance struct {
	mod                                               api.Module
	mem                                               api.Memory
	fAlloc, fFree, fConfigure, fLoad, fDecide, fError api.Function
	stack                                             [2]uint64
	req                                               verifier.Request
	reqPtr, reqCap                                    uint32
	snap                                              *wasmSnap
	stderr                                            *tail
}

// instantiate creates an instance: _initialize, ABI version check, engine options, and a
// request buffer.
func instantiate(ctx context.Context, m *module, cfg *Config) (*instance, error) {
	in := &instance{stderr: &tail{}}
	mc := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
		WithRandSource(rand.Reader).WithStderr(in.stderr).WithStdout(in.stderr)
	mod, err := m.rt.InstantiateModule(ctx, m.compiled, mc)
	if err != nil {
		return nil, errors.New("wasm: instantiate: " + err.Error() + in.stderr.String())
	}
	in.mod, in.mem = mod, mod.Memory()
	in.fAlloc, in.fFree = mod.ExportedFunction("lk_alloc"), mod.ExportedFunction("lk_free")
	in.fConfigure, in.fLoad = mod.ExportedFunction("lk_configure"), mod.ExportedFunction("lk_load")
	in.fDecide, in.fError = mod.ExportedFunction("lk_decide"), mod.ExportedFunction("lk_error")
	fail := func(err error) (*instance, error) {
		mod.Close(ctx)
		return nil, err
	}
	v, err := in.call(mod.ExportedFunction("lk_abi_version"))
	if err != nil {
		return fail(err)
	}
	if v != abi.Version {
		return fail(errors.New("wasm: module speaks ABI version " + strconv.FormatUint(v, 10) + ", this host " + strconv.Itoa(abi.Version)))
	}
	if _, err := in.call(in.fConfigure, uint64(int64(cfg.maxStaleness.Seconds())), api.EncodeI32(int32(cfg.tokenCacheSize))); err != nil {
		return fail(err)
	}
	if err := in.growRequest(4096); err != nil {
		return fail(err)
	}
	return in, nil
}

// call calls f with up to two parameters and returns its first result.
func (in *instance) call(f api.Function, params ...uint64) (uint64, error) {
	in.stack = [2]uint64{}
	copy(in.stack[:], params)
	if err := f.CallWithStack(context.Background(), in.stack[:]); err != nil {
		return 0, errors.New("wasm: " + f.Definition().Name() + ": " + err.Error() + in.stderr.String())
	}
	return in.stack[0], nil
}

// growRequest replaces the request buffer with one of at least n bytes.
func (in *instance) growRequest(n int) error {
	if in.reqPtr != 0 {
		if _, err := in.call(in.fFree, uint64(in.reqPtr)); err != nil {
			return err
		}
		in.reqPtr, in.reqCap = 0, 0
	}
	p, err := in.call(in.fAlloc, uint64(n))
	if err != nil {
		return err
	}
	if p == 0 {
		return errors.New("wasm: lk_alloc refused " + strconv.Itoa(n) + " bytes")
	}
	in.reqPtr, in.reqCap = uint32(p), uint32(n)
	return nil
}

// result reads the bytes a packed (address << 32 | length) result names.
func (in *instance) result(packed uint64) ([]byte, bool) {
	return in.mem.Read(uint32(packed>>32), uint32(packed))
}

// decide runs one decision: the request is encoded straight into the guest's request buffer,
// one export call decides, and the decision is copied out into res.
func (in *instance) decide(res *Result) error {
	n := abi.RequestLen(&in.req)
	if n < 0 {
		return abi.ErrTooLarge
	}
	if uint32(n) > in.reqCap {
		if err := in.growRequest(max(n, 2*int(in.reqCap))); err != nil {
			return err
		}
	}
	buf, ok := in.mem.Read(in.reqPtr, uint32(n))
	if !ok {
		return errors.New("wasm: request buffer out of range")
	}
	if _, err := abi.AppendRequest(buf[:0], &in.req); err != nil {
		return err
	}
	packed, err := in.call(in.fDecide, uint64(in.reqPtr), uint64(n))
	if err != nil {
		return err
	}
	if packed == 0 {
		return errors.New("wasm: lk_decide: " + in.lastError())
	}
	out, ok := in.result(packed)
	if !ok {
		return errors.New("wasm: lk_decide returned an out-of-range decision")
	}
	res.raw = append(res.raw[:0], out...)
	if err := res.Decision.Decode(res.raw); err != nil {
		return errors.New("wasm: lk_decide: " + err.Error())
	}
	return nil
}

func (in *instance) lastError() string {
	packed, err := in.call(in.fError)
	if err != nil {
		return err.Error()
	}
	b, _ := in.result(packed)
	return string(b)
}

// load copies l into a guest buffer (the guest takes it over) and loads it. An error means
// the instance is broken; a refused snapshot is a result with a non-OK status.
func (in *instance) load(l *abi.Load) (*abi.LoadResult, error) {
	n := abi.LoadLen(l)
	if n < 0 || n > 1<<30 {
		return &abi.LoadResult{Status: abi.StatusTooLarge, Error: abi.ErrTooLarge.Error()}, nil
	}
	p, err := in.call(in.fAlloc, uint64(n))
	if err != nil {
		return nil, err
	}
	if p == 0 {
		return nil, errors.New("wasm: lk_alloc refused " + strconv.Itoa(n) + " bytes")
	}
	buf, ok := in.mem.Read(uint32(p), uint32(n))
	if !ok {
		return nil, errors.New("wasm: load buffer out of range")
	}
	if _, err := abi.AppendLoad(buf[:0], l); err != nil {
		return nil, err
	}
	packed, err := in.call(in.fLoad, p, uint64(n))
	if err != nil {
		return nil, err
	}
	out, ok := in.result(packed)
	if !ok || packed == 0 {
		return nil, errors.New("wasm: lk_load returned no result")
	}
	r, err := abi.DecodeLoadResult(out)
	if err != nil {
		return nil, errors.New("wasm: lk_load: " + err.Error())
	}
	return r, nil
}

// loadSnap brings the instance to a snapshot that already passed verification in another
// instance; it must pass here too.
func (in *instance) loadSnap(s *wasmSnap) error {
	r, err := in.load(&s.load)
	if err != nil {
		return err
	}
	if r.Status != abi.StatusOK {
		return errors.New("wasm: snapshot version " + strconv.FormatUint(s.info.Version, 10) + " refused by an instance: " + r.Error)
	}
	in.snap = s
	return nil
}

// tail keeps the last bytes a guest wrote to stdout or stderr, for error messages.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 2048

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == 0 {
		return ""
	}
	return " (guest output: " + strings.TrimSpace(string(t.buf)) + ")"
}
