package main

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/latchkeyhq/latchkey/internal/wasmbuild"
)

// The guest builds the tests host: standard Go and TinyGo with the tag latchkey_fixedclock, so
// that a configuration's now_override fixes the clock at the fixtures', and the release builds
// (`make httpwasm`'s, reused while fresh).
var variants = map[string]wasmbuild.Variant{
	"go":             {Name: "httpwasm-go-fixedclock", Compiler: "go", Package: "./wasm/httpwasm", Tags: []string{"latchkey_fixedclock"}, Made: "-"},
	"tinygo":         {Name: "httpwasm-tinygo-fixedclock", Compiler: "tinygo", Package: "./wasm/httpwasm", Tags: []string{"latchkey_fixedclock"}, Made: "-"},
	"go-release":     {Name: "httpwasm-go", Compiler: "go", Package: "./wasm/httpwasm", Made: "wasm/httpwasm/build/httpwasm-go.wasm"},
	"tinygo-release": {Name: "httpwasm-tinygo", Compiler: "tinygo", Package: "./wasm/httpwasm", Made: "wasm/httpwasm/build/httpwasm-tinygo.wasm"},
}

var (
	builder *wasmbuild.Builder
	modMu   sync.Mutex
	modules = map[string][]byte{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "httpwasm-test-")
	if err != nil {
		panic(err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	builder = &wasmbuild.Builder{Root: root, Dir: dir}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// guestWasm returns the guest built by compiler ("go", "tinygo", "go-release" or
// "tinygo-release"), skipping
// the test when TinyGo is missing outside CI.
func guestWasm(t testing.TB, compiler string) []byte {
	t.Helper()
	path, err := builder.Path(variants[compiler])
	if errors.Is(err, wasmbuild.ErrNoTinyGo) && os.Getenv("CI") == "" {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	modMu.Lock()
	defer modMu.Unlock()
	if b, ok := modules[path]; ok {
		return b
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	modules[path] = b
	return b
}
