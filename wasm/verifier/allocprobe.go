//go:build allocprobe

package main

//lint:file-ignore U1000 the host reaches this code through //go:wasmexport, which staticcheck does not follow

import "runtime"

// lk_debug_mallocs returns how many heap allocations the guest has made so far. Only builds with
// the tag allocprobe export it: edge/filter's TestGuestAllocations counts a decision's
// allocations with it, under TinyGo in particular, where conversions that standard Go does
// without copying (string(b) == s, m[string(b)], bytes.Equal) allocate.
//
//go:wasmexport lk_debug_mallocs
func lkDebugMallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}
