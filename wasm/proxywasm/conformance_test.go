//go:build !wasip1

package main

import (
	"sync"
	"testing"

	"github.com/latchkeyhq/latchkey/examples/profiles/conformance"
)

var configs sync.Map // profile name → plugin configuration, clock fixed at the fixture's

func conformanceConfig(f *conformance.Fixture) []byte {
	if c, ok := configs.Load(f.Profile); ok {
		return c.([]byte)
	}
	c := fixedConfig(f.Built, nil)
	configs.Store(f.Profile, c)
	return c
}

// TestConformance runs the cross-host conformance suite (examples/profiles/conformance) on the
// compiled filter, standard Go and TinyGo builds, hosted on wazero by proxytest's Envoy
// emulator: TestConformance/proxywasm-<compiler>/<profile>/<case>. Every case gets a new
// plugin (a fresh engine) on a VM compiled once per build. A denial is the local response the
// filter sent; a forwarded request is the request headers and :path after the filter.
func TestConformance(t *testing.T) {
	var hosts []conformance.Host
	for _, compiler := range compilers {
		hosts = append(hosts, conformance.Host{
			Name: "proxywasm-" + compiler,
			// The emulator is process-wide: one plugin at a time.
			Serial: true,
			Open: func(t *testing.T, f *conformance.Fixture) func(*testing.T, *conformance.Exchange) *conformance.Response {
				flt := startFilter(t, compiler, conformanceConfig(f))
				if logs := flt.errorLogs(); logs != "" {
					t.Fatalf("the filter logged errors at start: %s", logs)
				}
				return func(t *testing.T, ex *conformance.Exchange) *conformance.Response { return flt.send(t, ex) }
			},
		})
	}
	conformance.Run(t, hosts...)
}
