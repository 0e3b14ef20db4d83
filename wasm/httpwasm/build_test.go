package main

import (
	"os"
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

var builder *wasmbuild.Builder

func TestMain(m *testing.M) {
	b, cleanup, err := wasmbuild.Temp("../..")
	if err != nil {
		panic(err)
	}
	builder = b
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// guestWasm returns the guest built by compiler ("go", "tinygo", "go-release" or
// "tinygo-release"), skipping the test when TinyGo is missing outside CI.
func guestWasm(t testing.TB, compiler string) []byte {
	t.Helper()
	return builder.Module(t, variants[compiler])
}
