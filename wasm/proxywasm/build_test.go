//go:build !wasip1

// The emulator (proxytest) builds only outside Wasm: under GOARCH=wasm its host calls are the
// guest's imports.

package main

import (
	"os"
	"sync"
	"testing"

	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm/proxytest"

	"github.com/latchkeyhq/latchkey/internal/wasmbuild"
)

// The builds the tests host. The test builds carry the tag latchkey_fixedclock, so that a
// configuration's now_override fixes the clock at the fixtures' (proxytest's wazero module
// configuration gives the guest a fake wall clock in 2022, and no host option changes it);
// the release builds are what `make proxywasm` ships.
var builds = map[string]wasmbuild.Variant{
	"go":             {Name: "proxywasm-go-fixedclock", Compiler: "go", Package: "./wasm/proxywasm", Tags: []string{"latchkey_fixedclock"}, Made: "-"},
	"tinygo":         {Name: "proxywasm-tinygo-fixedclock", Compiler: "tinygo", Package: "./wasm/proxywasm", Tags: []string{"latchkey_fixedclock"}, Made: "-"},
	"go-release":     {Name: "proxywasm-go", Compiler: "go", Package: "./wasm/proxywasm", Made: "wasm/proxywasm/build/proxywasm-go.wasm"},
	"tinygo-release": {Name: "proxywasm-tinygo", Compiler: "tinygo", Package: "./wasm/proxywasm", Made: "wasm/proxywasm/build/proxywasm-tinygo.wasm"},
}

// compilers are the test builds every behaviour is checked on.
var compilers = []string{"go", "tinygo"}

var builder *wasmbuild.Builder

func TestMain(m *testing.M) {
	b, cleanup, err := wasmbuild.Temp("../..")
	if err != nil {
		panic(err)
	}
	builder = b
	code := m.Run()
	vmsMu.Lock()
	for _, v := range vms {
		if v.vm != nil {
			_ = v.vm.Close()
		}
	}
	vmsMu.Unlock()
	cleanup()
	os.Exit(code)
}

// guestWasm returns the named build's module, skipping the test when TinyGo is missing
// outside CI.
func guestWasm(t testing.TB, name string) []byte {
	t.Helper()
	return builder.Module(t, builds[name])
}

type compiledVM struct {
	once sync.Once
	vm   proxytest.WasmVMContext
	err  error
}

var (
	vmsMu sync.Mutex
	vms   = map[string]*compiledVM{}
)

// guestVM returns the named build compiled and instantiated on wazero by proxytest, once per
// test binary: every filter started on it is a new plugin context in the same instance, with
// its own engine (an empty token cache, full rate buckets), so a case costs a plugin start,
// not a compilation.
func guestVM(t testing.TB, name string) proxytest.WasmVMContext {
	t.Helper()
	wasm := guestWasm(t, name)
	vmsMu.Lock()
	c, ok := vms[name]
	if !ok {
		c = &compiledVM{}
		vms[name] = c
	}
	vmsMu.Unlock()
	c.once.Do(func() { c.vm, c.err = proxytest.NewWasmVMContext(wasm) })
	if c.err != nil {
		t.Fatal("wasm: " + c.err.Error())
	}
	return c.vm
}
