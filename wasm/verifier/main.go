// Command verifier is latchkey's verification core (shared/verifier) as a WebAssembly
// reactor: a host loads signed snapshots into it and asks it to decide requests. ABI.md
// specifies the exports and the encodings (package abi implements them).
//
// Two flavours, chosen at build time: with the build tag "accel" the guest imports sha256,
// ed25519_verify and p256_verify from the host module "latchkey" (the host's native crypto);
// without it, it carries the standard library's crypto compiled to Wasm and imports nothing
// but WASI. Both build with TinyGo (the release build) and with standard Go
// (GOOS=wasip1 GOARCH=wasm -buildmode=c-shared); hosts call _initialize once before anything
// else. The guest never reads a clock: time arrives with every load and request. It keeps
// no fmt and no reflection, so that TinyGo builds it with -scheduler=none.
package main

//lint:file-ignore U1000 the host reaches this code through //go:wasmexport and //go:wasmimport, which staticcheck does not follow

import (
	"unsafe"

	"github.com/latchkeyhq/latchkey/shared/verifier"
	"github.com/latchkeyhq/latchkey/wasm/verifier/abi"
)

// maxAlloc bounds one lk_alloc: a load carries at most a few hundred MiB of snapshot.
const maxAlloc = 1 << 30

var (
	// pinned are the buffers handed to the host by lk_alloc, by address: the map keeps them
	// reachable for the garbage collector until lk_free or lk_load takes them back.
	pinned = map[uint32][]byte{}
	// last is the most recently looked-up pinned buffer: a host reuses one request buffer, so
	// this spares a map lookup per decision.
	lastPtr uint32
	lastBuf []byte

	opts   = verifier.Options{Crypto: provider}
	engine = verifier.NewEngine(opts)
	state  *verifier.State

	req      verifier.Request
	decision abi.Decision
	out      = make([]byte, 0, 4096)
	result   abi.LoadResult
	resOut   []byte
	errText  []byte
)

func main() {}

//go:wasmexport lk_abi_version
func lkABIVersion() uint32 { return abi.Version }

// lk_alloc returns a buffer of size bytes for the host to write into, or 0 when size is 0 or
// above maxAlloc.
//
//go:wasmexport lk_alloc
func lkAlloc(size uint32) uint32 {
	if size == 0 || size > maxAlloc {
		return 0
	}
	b := make([]byte, size)
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
	pinned[p] = b
	return p
}

// lk_free releases a buffer from lk_alloc. Unknown addresses are ignored.
//
//go:wasmexport lk_free
func lkFree(ptr uint32) {
	delete(pinned, ptr)
	if ptr == lastPtr {
		lastPtr, lastBuf = 0, nil
	}
}

// buffer returns the first n bytes of the pinned buffer at ptr, or nil.
func buffer(ptr, n uint32) []byte {
	if ptr != lastPtr || lastBuf == nil {
		b, ok := pinned[ptr]
		if !ok {
			return nil
		}
		lastPtr, lastBuf = ptr, b
	}
	if uint64(n) > uint64(len(lastBuf)) {
		return nil
	}
	return lastBuf[:n:n]
}

// lk_configure sets the engine options and replaces the engine: its token cache and rate
// buckets start empty. maxStalenessSeconds > 0 fails every decision closed (503) once the
// snapshot held was issued longer ago; tokenCacheSize 0 keeps the default, < 0 disables the
// cache. It returns 0.
//
//go:wasmexport lk_configure
func lkConfigure(maxStalenessSeconds int64, tokenCacheSize int32) uint32 {
	opts.MaxStalenessSeconds = maxStalenessSeconds
	opts.TokenCacheSize = int(tokenCacheSize)
	engine = verifier.NewEngine(opts)
	engine.SetState(state)
	return 0
}

// lk_load loads the snapshot encoded (abi.Load) in the first n bytes of the buffer at ptr,
// which must come from lk_alloc: the guest takes it over (the host must neither free nor
// reuse it) and keeps it while the snapshot is held. It returns the address and length of an
// abi.LoadResult, valid until the next lk_load.
//
//go:wasmexport lk_load
func lkLoad(ptr, n uint32) uint64 {
	result.Status, result.Error = abi.StatusOK, ""
	b := buffer(ptr, n)
	lkFree(ptr)
	var ld abi.Load
	if b == nil {
		result.Status, result.Error = abi.StatusMalformed, "abi: lk_load: not a buffer from lk_alloc, or too short"
	} else if err := abi.DecodeLoad(b, &ld); err != nil {
		result.Status, result.Error = abi.StatusMalformed, err.Error()
	} else {
		st, err := ld.Open(state, provider)
		if err != nil {
			le := abi.NewLoadError(err)
			result.Status, result.Error = le.Status, le.Text
		} else {
			state = st
			engine.SetState(st)
		}
	}
	abi.Describe(state, &result)
	var err error
	if resOut, err = abi.AppendLoadResult(resOut[:0], &result); err != nil {
		return fail(err.Error())
	}
	return pack(resOut)
}

// lk_decide decides the request encoded (abi.Request) in the first n bytes of the buffer at
// ptr (from lk_alloc; the host keeps it and may reuse it). It returns the address and length
// of the abi.Decision, valid until the next call into the guest, or 0 when the request is
// malformed (lk_error says why).
//
//go:wasmexport lk_decide
func lkDecide(ptr, n uint32) uint64 {
	b := buffer(ptr, n)
	if b == nil {
		return fail("abi: lk_decide: not a buffer from lk_alloc, or too short")
	}
	if err := abi.DecodeRequest(b, &req); err != nil {
		return fail(err.Error())
	}
	decision.Set(engine.Decide(&req))
	var err error
	if out, err = abi.AppendDecision(out[:0], &decision); err != nil {
		return fail(err.Error())
	}
	return pack(out)
}

// lk_error returns the address and length of the text of the last failure of lk_decide.
//
//go:wasmexport lk_error
func lkError() uint64 { return pack(errText) }

func fail(msg string) uint64 {
	errText = append(errText[:0], msg...)
	return 0
}

func pack(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))))<<32 | uint64(len(b))
}
